import type { IncomingHttpHeaders } from 'node:http'
import { acceptClientResponse, formatClientOffer, negotiateServer, resolveOptions, type AgreedParams, type DeflateNegotiationOptions } from './negotiation.js'
import { checkLevel, checkMemLevel, checkRange, checkSyncLimit, type PerMessageDeflateOptions } from './options.js'

/**
 * The `compression` setting of Upgrader, Dialer, plugin and routes: what to negotiate and how to
 * compress. Every field is optional; `true` means all defaults.
 */
export interface CompressionOptions extends DeflateNegotiationOptions, Omit<PerMessageDeflateOptions, 'readLimit' | 'limiter'> {}

/** What the handshake hands to a Conn when permessage-deflate was agreed. */
export interface NegotiatedCompression {
  params: AgreedParams
  options: PerMessageDeflateOptions
}

/** Checks a `compression` setting and returns it in object form, or undefined when compression is off. */
export function resolveCompression (setting: boolean | CompressionOptions | undefined): CompressionOptions | undefined {
  if (setting === undefined || setting === false) return undefined
  const options = setting === true ? {} : setting
  if (typeof options !== 'object' || options === null) throw new TypeError('websocket: option compression must be a boolean or an object')
  resolveOptions(options)
  if (options.level !== undefined) checkLevel(options.level)
  if (options.memLevel !== undefined) checkMemLevel(options.memLevel)
  if (options.threshold !== undefined) checkRange('threshold', options.threshold, 0, Number.MAX_SAFE_INTEGER)
  if (options.idleTimeout !== undefined) checkRange('idleTimeout', options.idleTimeout, 0, 2 ** 31 - 1)
  if (options.syncLimit !== undefined) checkSyncLimit(options.syncLimit)
  return options
}

/** Server side: the response header value and the Conn's compression, or undefined to go on uncompressed. */
export function negotiateCompression (headers: IncomingHttpHeaders, options: CompressionOptions | undefined): { response: string, compression: NegotiatedCompression } | undefined {
  if (options === undefined) return undefined
  const agreed = negotiateServer(headers['sec-websocket-extensions'], options)
  if (agreed === undefined) return undefined
  return { response: agreed.response, compression: { params: agreed.params, options: codecOptions(options) } }
}

/** Client side: the Sec-WebSocket-Extensions value to offer. */
export function compressionOffer (options: CompressionOptions): string {
  return formatClientOffer(options)
}

/** Client side: the Conn's compression from the server's answer, or a reason to fail the handshake. */
export function acceptCompression (header: string | readonly string[], options: CompressionOptions): NegotiatedCompression | string {
  const params = acceptClientResponse(header, options)
  if (typeof params === 'string') return params
  return { params, options: codecOptions(options) }
}

function codecOptions (options: CompressionOptions): PerMessageDeflateOptions {
  const { level, memLevel, threshold, idleTimeout, syncLimit } = options
  return { level, memLevel, threshold, idleTimeout, syncLimit }
}
