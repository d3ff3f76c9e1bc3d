import { randomBytes } from 'node:crypto'
import * as http from 'node:http'
import * as https from 'node:https'
import type { ConnectionOptions } from 'node:tls'
import type { Duplex } from 'node:stream'
import { Conn } from './conn/conn.js'
import { computeAcceptKey, isValidHeaderName, parseSubprotocols, tokenListContainsValue } from './handshake.js'
import { checkMilliseconds, checkSubprotocols } from './option-checks.js'
import { resolveConnOptions, type ConnOptions } from './options.js'
import { compressionOffer, resolveCompression, type CompressionOptions } from './deflate/compression.js'
import { HandshakeError, TimeoutError } from './protocol/errors.js'
import { DEFAULT_DIAL_TIMEOUT, DialAbortError, MAX_REFUSAL_BODY, checkAgreement, negotiated, readBody } from './client-handshake.js'
import { Http2Sessions } from './http2/dial.js'

/** Settings of a dial; every field is optional, and the ConnOptions apply to the Conn it makes. */
export interface DialOptions extends ConnOptions {
  /** Extra request headers (Host may be overridden); handshake headers are refused with a TypeError. */
  headers?: Record<string, string>
  /** Subprotocols to offer, in order of preference; sent as one header joined with ", ". */
  subprotocols?: string[]
  /** Milliseconds for the whole handshake (connect, TLS, request, response); 0 disables. Default 45000. */
  handshakeTimeout?: number
  /** Aborts the handshake (not the resulting Conn) with an AbortError whose cause is the signal's reason. */
  signal?: AbortSignal
  /** TLS settings for wss:// (ca, rejectUnauthorized, servername, cert, key, ...). */
  tls?: ConnectionOptions
  /** Value of the Origin header; takes precedence over an Origin entry in `headers`. */
  origin?: string
  /**
   * Open the WebSocket over HTTP/2 (RFC 8441 extended CONNECT) instead of an HTTP/1.1 upgrade: one
   * HTTP/2 session per origin and TLS settings is opened or reused, and closed once its last
   * WebSocket (or dial) is gone. A server that does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL
   * fails the dial with a HandshakeError of status 0. Default false.
   */
  http2?: boolean
  /**
   * Offer permessage-deflate (RFC 7692): `true` for the defaults, or an object (context takeover
   * and window bits to ask for, `level`, `memLevel`, `threshold`, `idleTimeout`, `syncLimit`). A server may
   * decline; an answer outside the offer fails the handshake. Default false.
   */
  compression?: boolean | CompressionOptions
  /**
   * Makes the connection the handshake runs over instead of a TCP or TLS socket (`tls` is then
   * unused): called once per dial with the URL, it returns the Duplex to use, such as an in-memory
   * pipe or an already open tunnel; a throw rejects the dial with that error.
   */
  createConnection?: (url: URL) => Duplex
}

// Request headers the handshake owns (lower case).
const FORBIDDEN_HEADERS = ['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions']

export { DEFAULT_DIAL_TIMEOUT, DialAbortError }

/**
 * The client side of the opening handshake (gorilla's Dialer), which connects to a ws:// or wss://
 * URL, checks the server's 101 strictly, and keeps no per-dial state, so `dial` may be called
 * concurrently.
 */
export class Dialer {
  readonly #defaults: DialOptions
  /** Made on the first dial with `http2`. */
  #http2: Http2Sessions | undefined

  /** Validates `defaults` at once, throwing a RangeError or TypeError on misconfiguration. */
  constructor (defaults: DialOptions = {}) {
    this.#defaults = { ...defaults }
    validate(this.#defaults)
  }

  /**
   * Opens a WebSocket connection. Resolves to a client Conn once a valid 101 has arrived; rejects
   * with a TypeError for a bad URL or options, a HandshakeError (status, headers and up to 1 KiB of
   * body) when the server refuses or answers wrongly, a TimeoutError, a DialAbortError, or the
   * network error. A failed dial never leaves a socket open.
   */
  async dial (url: string | URL, options: DialOptions = {}): Promise<Conn> {
    const opts = merge(this.#defaults, options)
    validate(opts)
    const target = parseUrl(url)
    const key = randomBytes(16).toString('base64')
    const headers = buildHeaders(target, key, opts)
    const secure = target.protocol === 'wss:'
    const createConnection = opts.createConnection
    const requestOptions: https.RequestOptions = {
      ...(secure && createConnection === undefined ? opts.tls : {}),
      host: target.hostname.replace(/^\[(.*)\]$/, '$1'),
      // '' for the scheme's default port, for which Node uses the agent's (80 for http, 443 for https).
      port: target.port,
      path: target.pathname + target.search,
      method: 'GET',
      headers,
      // Node uses createConnection only when no agent is given (agent: false makes one).
      ...(createConnection === undefined ? { agent: false } : { createConnection: () => createConnection(target) })
    }
    const connOptions = resolveConnOptions(opts)
    const offered = offeredSubprotocols(opts)
    const compression = resolveCompression(opts.compression)
    const signal = opts.signal
    if (signal?.aborted === true) throw new DialAbortError(signal.reason)
    if (opts.http2 === true) return await (this.#http2 ??= new Http2Sessions()).dial(target, opts, offered, compression, connOptions)

    return await new Promise<Conn>((resolve, reject) => {
      let done = false
      let timer: NodeJS.Timeout | undefined
      const req = secure ? https.request(requestOptions) : http.request(requestOptions)

      const finish = (): boolean => {
        if (done) return false
        done = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        // With no 'upgrade' listener left, Node itself destroys a socket that upgrades after this.
        req.off('upgrade', onUpgrade)
        return true
      }
      const fail = (err: Error): void => {
        if (!finish()) return
        req.destroy()
        reject(err)
      }
      const onAbort = (): void => fail(new DialAbortError(signal?.reason))

      const timeout = opts.handshakeTimeout ?? DEFAULT_DIAL_TIMEOUT
      if (timeout > 0) timer = setTimeout(() => fail(new TimeoutError('handshake timed out')), timeout)
      signal?.addEventListener('abort', onAbort, { once: true })

      req.on('error', (err) => fail(err))
      req.on('response', (res) => {
        // A client response always has a status code and a (possibly empty) status message.
        const status = res.statusCode!
        if (status === 101) {
          // Node's parser upgrades only with an Upgrade header and an 'upgrade' token in Connection.
          fail(new HandshakeError("bad handshake: the 101 response is not a WebSocket upgrade: it needs 'Upgrade: websocket' and 'Connection: Upgrade'", 101, { ...res.headers }))
          return
        }
        readBody(res, MAX_REFUSAL_BODY, (body) => {
          const answer = `${status} ${res.statusMessage!}`.trimEnd()
          fail(new HandshakeError(`bad handshake: the server answered ${answer}`, status, { ...res.headers }, body))
        })
      })
      // Node calls this from the socket's 'data' handler, where a throw would be uncaught; nothing
      // here throws: the options were validated up front, and a Conn reports bad frames in `head`
      // by failing the connection, not by throwing. Node emits 'upgrade' for a 101 only.
      const onUpgrade = (res: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
        const problem = checkResponse(res, key, offered, compression)
        if (problem !== undefined) {
          socket.destroy()
          fail(new HandshakeError(`bad handshake: ${problem}`, 101, { ...res.headers }))
          return
        }
        finish()
        resolve(new Conn(socket, {
          isServer: false,
          head,
          subprotocol: res.headers['sec-websocket-protocol'] ?? '',
          extensions: res.headers['sec-websocket-extensions'] ?? '',
          compression: negotiated(res.headers['sec-websocket-extensions'], compression),
          response: { statusCode: 101, headers: res.headers },
          options: connOptions
        }))
      }
      req.on('upgrade', onUpgrade)
      req.end()
    })
  }
}

const defaultDialer = new Dialer()

/** Dials `url` with a Dialer that has default settings; see `Dialer.dial` for what it guarantees. */
export async function dial (url: string | URL, options?: DialOptions): Promise<Conn> {
  return await defaultDialer.dial(url, options)
}

/** Combines a Dialer's defaults with per-dial options: per-dial values win, headers and tls merge. */
function merge (defaults: DialOptions, options: DialOptions): DialOptions {
  const out: DialOptions = { ...defaults }
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined) (out as Record<string, unknown>)[name] = value
  }
  if (defaults.headers !== undefined && options.headers !== undefined) {
    const headers: Record<string, string> = {}
    const overridden = new Set(Object.keys(options.headers).map((n) => n.toLowerCase()))
    for (const [n, v] of Object.entries(defaults.headers)) if (!overridden.has(n.toLowerCase())) headers[n] = v
    out.headers = Object.assign(headers, options.headers)
  }
  if (defaults.tls !== undefined && options.tls !== undefined) out.tls = { ...defaults.tls, ...options.tls }
  return out
}

/** Throws a RangeError or TypeError describing the first problem of a set of dial options. */
function validate (opts: DialOptions): void {
  resolveConnOptions(opts)
  resolveCompression(opts.compression)
  checkMilliseconds('handshakeTimeout', opts.handshakeTimeout ?? DEFAULT_DIAL_TIMEOUT)
  const protocols = checkSubprotocols(opts.subprotocols ?? [])
  const names = Object.keys(opts.headers ?? {})
  const bad = names.filter((n) => !isValidHeaderName(n))
  if (bad.length > 0) throw new TypeError(`websocket: invalid header name(s): ${bad.map((n) => JSON.stringify(n)).join(', ')}`)
  const forbidden = names.filter((n) => FORBIDDEN_HEADERS.includes(n.toLowerCase()) ||
    (protocols.length > 0 && n.toLowerCase() === 'sec-websocket-protocol'))
  if (forbidden.length > 0) {
    throw new TypeError(`websocket: header(s) set by the handshake cannot be given: ${forbidden.join(', ')}`)
  }
  for (const [n, v] of Object.entries(opts.headers ?? {})) {
    if (typeof v !== 'string' || /[\r\n\0]/.test(v)) throw new TypeError(`websocket: header ${n} must be a string without CR, LF or NUL`)
  }
  if (opts.origin !== undefined && (typeof opts.origin !== 'string' || /[\r\n\0]/.test(opts.origin))) {
    throw new TypeError('websocket: option origin must be a string without CR, LF or NUL')
  }
  if (opts.http2 !== undefined && typeof opts.http2 !== 'boolean') throw new TypeError('websocket: option http2 must be a boolean')
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) {
    throw new TypeError('websocket: option signal must be an AbortSignal')
  }
  if (opts.createConnection !== undefined && typeof opts.createConnection !== 'function') {
    throw new TypeError('websocket: option createConnection must be a function')
  }
  if (opts.createConnection !== undefined && opts.http2 === true) {
    throw new TypeError('websocket: options createConnection and http2 cannot be combined (an HTTP/2 dial opens its own session)')
  }
}

/**
 * Parses and checks a ws:// or wss:// URL, throwing a TypeError for anything else. Such a URL always
 * has a host: ws and wss are special schemes, which WHATWG URL parsing refuses without one.
 */
function parseUrl (url: string | URL): URL {
  let target: URL
  try {
    target = new URL(String(url))
  } catch {
    throw new TypeError(`websocket: malformed ws or wss URL: ${JSON.stringify(String(url))}`)
  }
  if (target.protocol !== 'ws:' && target.protocol !== 'wss:') {
    throw new TypeError(`websocket: unsupported URL scheme ${JSON.stringify(target.protocol)}: only ws: and wss: are accepted`)
  }
  if (target.username !== '' || target.password !== '') {
    throw new TypeError('websocket: URL user info is not supported; send credentials in a header')
  }
  return target
}

function buildHeaders (target: URL, key: string, opts: DialOptions): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = { Host: target.host }
  for (const [name, value] of Object.entries(opts.headers ?? {})) {
    if (name.toLowerCase() === 'host') delete headers.Host
    if (opts.origin !== undefined && name.toLowerCase() === 'origin') continue
    headers[name] = value
  }
  if (opts.origin !== undefined) headers.Origin = opts.origin
  headers.Connection = 'Upgrade'
  headers.Upgrade = 'websocket'
  headers['Sec-WebSocket-Version'] = '13'
  headers['Sec-WebSocket-Key'] = key
  if (opts.subprotocols !== undefined && opts.subprotocols.length > 0) {
    headers['Sec-WebSocket-Protocol'] = opts.subprotocols.join(', ')
  }
  const compression = resolveCompression(opts.compression)
  if (compression !== undefined) headers['Sec-WebSocket-Extensions'] = compressionOffer(compression)
  return headers
}

/** The subprotocols this dial offers: `subprotocols`, or else those of a Sec-WebSocket-Protocol header. */
function offeredSubprotocols (opts: DialOptions): string[] {
  if (opts.subprotocols !== undefined && opts.subprotocols.length > 0) return opts.subprotocols
  for (const [name, value] of Object.entries(opts.headers ?? {})) {
    if (name.toLowerCase() === 'sec-websocket-protocol') return parseSubprotocols(value)
  }
  return []
}

/** Returns what is wrong with a 101 response that Node treated as an upgrade, or undefined when it is valid. */
function checkResponse (res: http.IncomingMessage, key: string, offered: string[], compression?: CompressionOptions): string | undefined {
  const h = res.headers
  // Connection needs no check: Node emits 'upgrade' only when it has the 'upgrade' token.
  if (!tokenListContainsValue(h.upgrade, 'websocket')) return "'Upgrade' header lacks the 'websocket' token"
  if (h['sec-websocket-accept'] !== computeAcceptKey(key)) return "'Sec-WebSocket-Accept' does not match the key"
  return checkAgreement(h, offered, compression)
}
