import type { IncomingHttpHeaders } from 'node:http'
import { acceptCompression, type CompressionOptions, type NegotiatedCompression } from './deflate/compression.js'

// The parts of the client handshake that HTTP/1.1 (lib/dialer.ts) and HTTP/2 (lib/http2/dial.ts)
// dials share: limits, the abort error, and the checks of what a server agreed to.

/** Default of `DialOptions.handshakeTimeout` in milliseconds, as gorilla's DefaultDialer. */
export const DEFAULT_DIAL_TIMEOUT = 45_000

/** Most bytes of a refusal's body that a HandshakeError keeps (gorilla keeps 1024). */
export const MAX_REFUSAL_BODY = 1024

/** The error a dial rejects with when its AbortSignal fires; `cause` is the signal's reason. */
export class DialAbortError extends Error {
  override readonly name = 'AbortError'
  readonly code = 'ABORT_ERR'
  constructor (reason: unknown) {
    super('websocket: dial aborted', { cause: reason })
  }
}

/**
 * Returns what is wrong with the subprotocol and extensions a server agreed to (in its 101, or
 * its 200 over HTTP/2), or undefined when both were offered.
 */
export function checkAgreement (h: IncomingHttpHeaders, offered: string[], compression?: CompressionOptions): string | undefined {
  // Node joins repeated header lines with ", ", so two answers show up as one value that is not offered.
  const protocol = h['sec-websocket-protocol']
  if (protocol !== undefined && !offered.includes(protocol)) {
    return offered.length === 0
      ? `the server chose subprotocol ${JSON.stringify(protocol)} but none was offered`
      : `the server chose subprotocol ${JSON.stringify(protocol)}, which was not offered`
  }
  const extensions = h['sec-websocket-extensions']
  if (extensions !== undefined) {
    if (compression === undefined) return `the server chose extensions ${JSON.stringify(extensions)} but none were offered`
    const accepted = acceptCompression(extensions, compression)
    if (typeof accepted === 'string') return `bad permessage-deflate answer: ${accepted}`
  }
  return undefined
}

/** Collects up to `limit` bytes of a response body, then calls `done` exactly once. */
export function readBody (res: NodeJS.ReadableStream, limit: number, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = []
  let size = 0
  let called = false
  const finish = (): void => {
    if (called) return
    called = true
    const body = Buffer.concat(chunks, size)
    done(body.subarray(0, Math.min(limit, body.length)))
  }
  res.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    size += chunk.length
    if (size >= limit) finish()
  })
  res.on('end', finish)
  res.on('close', finish)
  res.on('error', finish)
}

/** The Conn's compression from a 101 (or HTTP/2 200) that checkAgreement already accepted. */
export function negotiated (header: string | undefined, compression: CompressionOptions | undefined): NegotiatedCompression | undefined {
  if (header === undefined || compression === undefined) return undefined
  return acceptCompression(header, compression) as NegotiatedCompression
}
