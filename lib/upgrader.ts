import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import type { Duplex } from 'node:stream'
import { Conn, type ConnHooks } from './conn/conn.js'
import {
  checkSameOrigin, computeAcceptKey, endSocketSoon, formatHeaderLines, isValidChallengeKey, originRefusalReason,
  isValidHeaderName, parseSubprotocols, tokenListContainsValue, writeHttpResponse, type OutgoingHeaders
} from './handshake.js'
import { checkMilliseconds, checkOptionalFunction, checkSubprotocols } from './option-checks.js'
import { resolveConnOptions, type ConnOptions } from './options.js'
import { negotiateCompression, resolveCompression, type CompressionOptions } from './deflate/compression.js'
import { HandshakeError, TimeoutError } from './protocol/errors.js'
import { Hub } from './hub/hub.js'
import { http2Headers, refuseStream } from './http2/respond.js'

/** Default of `UpgraderOptions.handshakeTimeout`, in milliseconds. */
export const DEFAULT_UPGRADE_TIMEOUT = 10_000

/** What a custom error responder gets: the refused request, its socket, and the response to send. */
export interface UpgradeErrorInfo {
  req: IncomingMessage
  socket: Duplex
  /** The HTTP status of the refusal (400, 403, 405, 426 or 500). */
  status: number
  /** Why the handshake was refused, in words meant for a log or a plain-text body. */
  reason: string
  /** Headers the refusal must carry (e.g. `Allow: GET` with 405, `Sec-WebSocket-Version: 13` with 426). */
  headers: Record<string, string>
}

/** Settings of an Upgrader; every field is optional, and the ConnOptions apply to each Conn it makes. */
export interface UpgraderOptions extends ConnOptions {
  /**
   * Decides whether the request's origin is allowed; false refuses with 403, a throw (or rejection)
   * refuses with 500. Default `checkSameOrigin` (no Origin header, or one naming Host's host and port).
   */
  checkOrigin?: (req: IncomingMessage) => boolean | Promise<boolean>
  /**
   * Subprotocols the server supports. The one chosen is the first protocol in the CLIENT's offered
   * order that appears in this list (RFC 6455 leaves the choice to the server; this follows the
   * client's preference, as gorilla's main branch does). No match means no Sec-WebSocket-Protocol.
   */
  subprotocols?: string[]
  /**
   * Chooses the subprotocol from the client's offer (called only when the client offers some);
   * takes precedence over `subprotocols`. Return undefined or '' for none. Returning a value the
   * client did not offer, or throwing, refuses the handshake with 500 (a server bug).
   */
  selectSubprotocol?: (offered: string[], req: IncomingMessage) => string | undefined | Promise<string | undefined>
  /**
   * Milliseconds allowed for the whole upgrade: the checks (async checkOrigin/selectSubprotocol
   * included) and writing the 101. On expiry the socket is destroyed and the upgrade rejects with a
   * HandshakeError of status 0 whose cause is a TimeoutError. 0 disables it. Default 10000.
   */
  handshakeTimeout?: number
  /** Extra headers for every 101 response; values are sanitised. Reserved handshake headers are refused. */
  headers?: Record<string, string | string[]>
  /**
   * Writes the refusal instead of the default plain-text response. It must write synchronously:
   * the socket is ended as soon as it returns (and destroyed shortly after), so nothing can hang.
   */
  onError?: (info: UpgradeErrorInfo) => void
  /**
   * permessage-deflate (RFC 7692): `true` for the defaults, or an object (context takeover and window
   * bits to agree to, `level`, `memLevel`, `threshold`, `idleTimeout`, `syncLimit`). An offer the server cannot
   * accept is declined and the connection goes on uncompressed. Default false.
   */
  compression?: boolean | CompressionOptions
  /** The hub whose topics the connections' `subscribe()` joins. Default none (`subscribe()` throws). */
  hub?: Hub
}

// Headers the handshake itself owns; neither options.headers nor responseHeaders may set them.
const RESERVED_RESPONSE_HEADERS = new Set([
  'upgrade', 'connection', 'sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions',
  'content-length', 'transfer-encoding'
])
const EMPTY = Buffer.alloc(0)

/** Thrown inside an upgrade to refuse it with an HTTP status. */
class Refusal {
  constructor (readonly status: number, readonly reason: string, readonly headers: Record<string, string> = {}, readonly cause?: unknown) {}
}

/**
 * Tracks one upgrade: its deadline, and the socket while checks are pending. The socket is read
 * during the handshake (so a peer that goes away is noticed at once); bytes that arrive early are
 * kept and handed to the Conn after `head`.
 */
class UpgradeAttempt {
  /** Set once the attempt has ended (timed out, socket gone); later steps must stop. */
  failure: HandshakeError | undefined
  readonly #socket: Duplex
  readonly #timer: NodeJS.Timeout | undefined
  readonly #failed: Promise<never>
  readonly #maxEarly: number
  readonly #early: Buffer[] = []
  #earlySize = 0
  #rejectFailed!: (err: HandshakeError) => void

  constructor (socket: Duplex, timeoutMs: number, maxEarlyBytes: number) {
    this.#socket = socket
    this.#maxEarly = maxEarlyBytes
    this.#failed = new Promise<never>((_resolve, reject) => { this.#rejectFailed = reject })
    this.#failed.catch(ignore)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    socket.on('end', this.#onClose)
    socket.on('data', this.#onData)
    if (timeoutMs > 0) {
      this.#timer = setTimeout(this.#onTimeout, timeoutMs)
    }
  }

  /**
   * Waits for `value`, but rejects as soon as the attempt fails, at once when it already has
   * (`#failed` comes first in the race). A rejection of `value` is always handled, even then.
   */
  async guard<T> (value: T | Promise<T>): Promise<T> {
    return await Promise.race([this.#failed, value])
  }

  /** `head` followed by whatever the peer sent while the handshake ran. */
  head (head: Buffer): Buffer {
    return this.#early.length === 0 ? head : Buffer.concat([head, ...this.#early])
  }

  /** Stops watching the socket; the caller now owns it (and must listen for 'data' in the same tick). */
  release (): void {
    clearTimeout(this.#timer)
    this.#socket.off('error', this.#onError)
    this.#socket.off('close', this.#onClose)
    this.#socket.off('end', this.#onClose)
    this.#socket.off('data', this.#onData)
  }

  /** Ends the attempt; called at most once, since `release` removes every listener that calls it. */
  fail (err: HandshakeError): void {
    this.failure = err
    this.release()
    this.#socket.on('error', ignore)
    this.#socket.destroy()
    this.#rejectFailed(err)
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#early.push(chunk)
    this.#earlySize += chunk.length
    if (this.#earlySize > this.#maxEarly) {
      this.fail(new HandshakeError('the client sent too much data before the handshake completed', 0))
    }
  }

  readonly #onError = (err: Error): void => {
    const failure = new HandshakeError(`socket error during handshake: ${err.message}`, 0)
    failure.cause = err
    this.fail(failure)
  }

  readonly #onClose = (): void => {
    this.fail(new HandshakeError('connection closed during handshake', 0))
  }

  readonly #onTimeout = (): void => {
    const failure = new HandshakeError('handshake timed out', 0)
    failure.cause = new TimeoutError('handshake timed out')
    this.fail(failure)
  }
}

/**
 * The server side of the opening handshake (gorilla's Upgrader), which validates an upgrade
 * request, answers 101 or an HTTP error, and holds no per-request state, so `upgrade` may be
 * called concurrently.
 */
export class Upgrader {
  readonly #options: UpgraderOptions
  readonly #connOptions: ConnOptions
  readonly #maxEarlyBytes: number
  readonly #handshakeTimeout: number
  readonly #subprotocols: readonly string[] | undefined
  readonly #extraHeaders: OutgoingHeaders
  readonly #compression: CompressionOptions | undefined
  readonly #hub: Hub | undefined

  /** Validates `options` at once, throwing a RangeError or TypeError on misconfiguration. */
  constructor (options: UpgraderOptions = {}) {
    this.#options = options
    const connOptions = resolveConnOptions(options)
    this.#connOptions = connOptions
    this.#compression = resolveCompression(options.compression)
    this.#maxEarlyBytes = connOptions.readBufferSize
    if (options.hub !== undefined && !(options.hub instanceof Hub)) throw new TypeError('websocket: option hub must be a Hub')
    this.#hub = options.hub
    this.#handshakeTimeout = checkMilliseconds('handshakeTimeout', options.handshakeTimeout ?? DEFAULT_UPGRADE_TIMEOUT)
    if (options.subprotocols !== undefined) this.#subprotocols = checkSubprotocols(options.subprotocols)
    for (const name of ['checkOrigin', 'selectSubprotocol', 'onError'] as const) {
      checkOptionalFunction(name, options[name])
    }
    const problem = checkExtraHeaders(options.headers ?? {})
    if (problem !== undefined) throw new TypeError(`websocket: option headers: ${problem}`)
    this.#extraHeaders = { ...options.headers }
  }

  /**
   * Answers an HTTP upgrade request on its raw socket. Resolves to a server Conn once the 101 has
   * been written; otherwise the HTTP refusal has been written, the socket is closed, and the
   * promise rejects with a HandshakeError carrying the status (0 when the socket failed or timed out,
   * or when the client closed its side, sending FIN, before the 101: such a socket is destroyed).
   * `hooks` are for code built on the Upgrader (the plugin): given to the Conn when it is made.
   */
  async upgrade (
    req: IncomingMessage, socket: Duplex, head: Buffer, responseHeaders: Record<string, string | string[]> = {}, hooks?: ConnHooks
  ): Promise<Conn> {
    if (socket.destroyed) throw new HandshakeError('socket already closed', 0)
    // A client that half-closed before the 101 can never answer a close frame. Node may have
    // reported its FIN already (the socket was not read since the request), so no event will come.
    if (socket.readableEnded) {
      socket.destroy()
      throw new HandshakeError('the client closed its side of the connection before the handshake', 0)
    }
    const attempt = new UpgradeAttempt(socket, this.#handshakeTimeout, this.#maxEarlyBytes)
    try {
      const subprotocol = await this.#negotiate(req, attempt, responseHeaders)
      const negotiated = negotiateCompression(req.headers, this.#compression)
      const extensions = negotiated?.response ?? ''
      const response = this.#buildResponse(req.headers['sec-websocket-key'] as string, subprotocol, extensions, responseHeaders)
      await attempt.guard(writeAll(socket, response))
      // Release and construct in the same tick, so no 'data' event can fall between the two.
      attempt.release()
      return new Conn(socket, {
        hooks, isServer: true, head: attempt.head(head), subprotocol, extensions, options: this.#connOptions, compression: negotiated?.compression, hub: this.#hub
      })
    } catch (err) {
      if (attempt.failure !== undefined) throw attempt.failure
      if (err instanceof Refusal) throw this.#refuse(req, socket, attempt, err)
      // Everything else above was validated, so what fails here is writing the 101, with an Error
      // that reached the write before any 'error' or 'close' did (a socket the application destroyed
      // during a check, a transport whose writes settle by promises).
      const failure = new HandshakeError(`upgrade failed: ${(err as Error).message}`, 0)
      failure.cause = err
      attempt.fail(failure)
      throw failure
    }
  }

  /**
   * Answers a WebSocket over HTTP/2 (RFC 8441): `req` is the extended CONNECT (`:protocol
   * websocket`) of a server whose settings enable it (`enableConnectProtocol`). The checks are
   * `upgrade`'s but for Sec-WebSocket-Key, which HTTP/2 does without; `:authority` plays the part
   * of Host for the origin check. Resolves to a server Conn over `req.stream` once the 200 is
   * sent; otherwise the refusal is the stream's response and the promise rejects with a
   * HandshakeError as `upgrade`'s does. Only the stream is ever ended or reset, never its session.
   * `onError` applies to HTTP/1.1 only; `hooks` are `upgrade`'s.
   */
  async upgradeStream (req: Http2ServerRequest, responseHeaders: Record<string, string | string[]> = {}, hooks?: ConnHooks): Promise<Conn> {
    const stream = req.stream
    if (stream.destroyed || stream.closed) throw new HandshakeError('stream already closed', 0)
    if (stream.readableEnded) {
      stream.destroy()
      throw new HandshakeError('the client ended its stream before the handshake', 0)
    }
    const attempt = new UpgradeAttempt(stream, this.#handshakeTimeout, this.#maxEarlyBytes)
    try {
      if (req.headers[':protocol'] !== 'websocket') {
        throw new Refusal(400, "the request is not an extended CONNECT for a WebSocket (':protocol' must be 'websocket')")
      }
      const subprotocol = await this.#agree(req as unknown as IncomingMessage, attempt, responseHeaders)
      const negotiated = negotiateCompression(req.headers, this.#compression)
      const extensions = negotiated?.response ?? ''
      const agreed: Record<string, string> = {}
      if (subprotocol !== '') agreed['sec-websocket-protocol'] = subprotocol
      if (extensions !== '') agreed['sec-websocket-extensions'] = extensions
      try {
        stream.respond(http2Headers(200, this.#extraHeaders as Record<string, string>, responseHeaders, agreed))
      } catch (err) {
        // HTTP/2 forbids some headers HTTP/1.1 allows (Keep-Alive, say): a server bug.
        throw new Refusal(500, `the 200 response could not be sent: ${(err as Error).message}`, {}, err)
      }
      attempt.release()
      return new Conn(stream, {
        hooks, isServer: true, head: attempt.head(EMPTY), subprotocol, extensions, options: this.#connOptions, compression: negotiated?.compression, hub: this.#hub
      })
    } catch (err) {
      if (attempt.failure !== undefined) throw attempt.failure
      attempt.release()
      // Only the checks throw here, each a Refusal or the attempt's failure (handled above).
      /* c8 ignore next */
      const refusal = err instanceof Refusal ? err : new Refusal(500, 'upgrade failed', {}, err)
      stream.on('error', ignore)
      refuseStream(stream, refusal.status, refusal.headers, `websocket: ${refusal.reason}\n`)
      const error = new HandshakeError(refusal.reason, refusal.status, { ...refusal.headers })
      if (refusal.cause !== undefined) error.cause = refusal.cause
      throw error
    }
  }

  /** Runs every check in order and returns the chosen subprotocol ('' for none). */
  async #negotiate (req: IncomingMessage, attempt: UpgradeAttempt, responseHeaders: Record<string, string | string[]>): Promise<string> {
    const h = req.headers
    if (req.method !== 'GET') {
      throw new Refusal(405, 'the request method must be GET', { Allow: 'GET' })
    }
    if (!tokenListContainsValue(h.upgrade, 'websocket')) {
      throw new Refusal(400, "the client is not using the websocket protocol: 'websocket' token not found in 'Upgrade' header")
    }
    if (!tokenListContainsValue(h.connection, 'upgrade')) {
      throw new Refusal(400, "the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header")
    }
    if (typeof h.host !== 'string' || h.host === '') {
      throw new Refusal(400, "missing 'Host' header")
    }
    if (!isValidChallengeKey(h['sec-websocket-key'])) {
      throw new Refusal(400, "'Sec-WebSocket-Key' header must be base64 of 16 bytes")
    }
    return await this.#agree(req, attempt, responseHeaders)
  }

  /**
   * The checks an HTTP/1.1 upgrade and an HTTP/2 extended CONNECT share, in order: the version,
   * the application's headers, the origin, the subprotocol (returned, '' for none).
   */
  async #agree (req: IncomingMessage, attempt: UpgradeAttempt, responseHeaders: Record<string, string | string[]>): Promise<string> {
    const version = req.headers['sec-websocket-version']
    if (typeof version !== 'string' || version.trim() !== '13') {
      throw new Refusal(426, 'unsupported version: 13 is the only one supported', { 'Sec-WebSocket-Version': '13' })
    }
    const problem = checkExtraHeaders(responseHeaders)
    if (problem !== undefined) throw new Refusal(500, `application response headers: ${problem}`)

    const checkOrigin = this.#options.checkOrigin ?? checkSameOrigin
    let allowed: boolean
    try {
      allowed = await attempt.guard(checkOrigin(req))
    } catch (err) {
      if (attempt.failure !== undefined) throw err
      throw new Refusal(500, 'checkOrigin failed', {}, err)
    }
    if (allowed !== true) {
      throw new Refusal(403, originRefusalReason(req.headers, this.#options.checkOrigin === undefined))
    }
    return await this.#selectSubprotocol(req, attempt)
  }

  async #selectSubprotocol (req: IncomingMessage, attempt: UpgradeAttempt): Promise<string> {
    const offered = parseSubprotocols(req.headers['sec-websocket-protocol'])
    if (offered.length === 0) return ''
    const select = this.#options.selectSubprotocol
    if (select !== undefined) {
      let chosen: string | undefined
      try {
        chosen = await attempt.guard(select(offered, req))
      } catch (err) {
        if (attempt.failure !== undefined) throw err
        throw new Refusal(500, 'selectSubprotocol failed', {}, err)
      }
      if (chosen === undefined || chosen === '') return ''
      if (typeof chosen !== 'string' || !offered.includes(chosen)) {
        throw new Refusal(500, `selectSubprotocol returned ${JSON.stringify(chosen)}, which the client did not offer`)
      }
      return chosen
    }
    const supported = this.#subprotocols
    if (supported === undefined) return ''
    return offered.find((p) => supported.includes(p)) ?? ''
  }

  /**
   * The 101 as text: a TCP socket writes a string straight from it, where a Buffer would come from
   * Node's shared pool, whose 8 KiB slabs the small buffers every connection keeps (its parser's)
   * would then keep alive around each spent response.
   */
  #buildResponse (key: string, subprotocol: string, extensions: string, responseHeaders: Record<string, string | string[]>): string {
    let text = 'HTTP/1.1 101 Switching Protocols\r\n' +
      'Upgrade: websocket\r\n' +
      'Connection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${computeAcceptKey(key)}\r\n`
    if (subprotocol !== '') text += `Sec-WebSocket-Protocol: ${subprotocol}\r\n`
    if (extensions !== '') text += `Sec-WebSocket-Extensions: ${extensions}\r\n`
    text += formatHeaderLines(this.#extraHeaders) + formatHeaderLines(responseHeaders) + '\r\n'
    return text
  }

  /** Writes the refusal, closes the socket and returns the error the upgrade rejects with. */
  #refuse (req: IncomingMessage, socket: Duplex, attempt: UpgradeAttempt, refusal: Refusal): HandshakeError {
    attempt.release()
    socket.on('error', ignore)
    const error = new HandshakeError(refusal.reason, refusal.status, { ...refusal.headers })
    if (refusal.cause !== undefined) error.cause = refusal.cause
    const onError = this.#options.onError
    if (onError === undefined) {
      writeHttpResponse(socket, refusal.status, refusal.headers, `websocket: ${refusal.reason}\n`)
      return error
    }
    try {
      onError({ req, socket, status: refusal.status, reason: refusal.reason, headers: { ...refusal.headers } })
      endSocketSoon(socket)
    } catch (err) {
      socket.destroy()
      if (error.cause === undefined) error.cause = err
    }
    return error
  }
}

/** Returns why a set of extra 101 headers cannot be sent, or undefined when it can. */
function checkExtraHeaders (headers: Record<string, unknown>): string | undefined {
  for (const [name, value] of Object.entries(headers)) {
    if (!isValidHeaderName(name)) return `invalid header name ${JSON.stringify(name)}`
    if (RESERVED_RESPONSE_HEADERS.has(name.toLowerCase())) return `header ${name} is set by the handshake and cannot be given`
    const values = Array.isArray(value) ? value : [value]
    if (values.some((v) => typeof v !== 'string' && typeof v !== 'number')) return `header ${name} must be a string or an array of strings`
  }
  return undefined
}

function writeAll (socket: Duplex, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(data, 'utf8', (err) => { if (err == null) resolve(); else reject(err) })
  })
}

function ignore (): void {}
