import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import type { ConnectionOptions } from 'node:tls'
import { Conn } from '../conn/conn.js'
import { compressionOffer, type CompressionOptions } from '../deflate/compression.js'
import { DEFAULT_DIAL_TIMEOUT, DialAbortError, MAX_REFUSAL_BODY, checkAgreement, negotiated, readBody } from '../client-handshake.js'
import type { DialOptions } from '../dialer.js'
import type { ConnOptions } from '../options.js'
import { HandshakeError, TimeoutError } from '../protocol/errors.js'

/** One HTTP/2 session to an origin and the streams (WebSockets and dials under way) that use it. */
interface SharedSession {
  readonly session: ClientHttp2Session
  /** Resolves once the server's first SETTINGS arrived and allow extended CONNECT; never rejects. */
  readonly ready: Promise<Error | undefined>
  users: number
}

/**
 * The HTTP/2 sessions of one Dialer, one per origin and TLS settings: a WebSocket dial opens one
 * or joins it, and the session closes when its last WebSocket (or dial) is gone, so no handle is
 * left behind.
 */
export class Http2Sessions {
  readonly #sessions = new Map<string, SharedSession>()

  /**
   * Runs an RFC 8441 extended CONNECT on the origin's session; resolves to a client Conn over the
   * stream once a valid 200 has arrived. Rejects as `Dialer.dial` does; the stream of a failed dial
   * is reset, never the session (unless nothing else uses it, then it is closed).
   */
  async dial (target: URL, opts: DialOptions, offered: string[], compression: CompressionOptions | undefined, connOptions: ConnOptions): Promise<Conn> {
    const secure = target.protocol === 'wss:'
    const origin = `${secure ? 'https' : 'http'}://${target.host}`
    const shared = this.#join(origin, secure ? opts.tls : undefined)
    const signal = opts.signal
    let stream: ClientHttp2Stream | undefined
    let timer: NodeJS.Timeout | undefined
    let settled = false
    // Once per dial: by the stream's 'close' when a stream was opened, else when the dial fails.
    const release = (): void => { this.#leave(shared) }
    let fail!: (err: Error) => void
    const onAbort = (): void => { fail(new DialAbortError(signal?.reason)) }
    const settle = (): void => {
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    return await new Promise<Conn>((resolve, reject) => {
      fail = (err: Error): void => {
        if (settled) return
        settle()
        if (stream === undefined) release()
        else stream.close(constants.NGHTTP2_CANCEL)
        reject(err)
      }
      const timeout = opts.handshakeTimeout ?? DEFAULT_DIAL_TIMEOUT
      if (timeout > 0) timer = setTimeout(() => { fail(new TimeoutError('handshake timed out')) }, timeout)
      signal?.addEventListener('abort', onAbort, { once: true })
      shared.ready.then((problem) => {
        if (problem !== undefined) {
          fail(problem)
          return
        }
        // Settled already (timeout, abort): nothing to send.
        if (settled) return
        let request: ClientHttp2Stream
        try {
          request = shared.session.request(buildHttp2Headers(target, opts, offered, compression), { endStream: false })
        } catch (err) {
          // A header HTTP/2 forbids (Keep-Alive, say), or a session that just began closing.
          fail(err as Error)
          return
        }
        stream = request
        request.on('error', (err) => { fail(err) })
        request.on('close', release)
        request.on('response', (headers) => {
          const status = Number(headers[constants.HTTP2_HEADER_STATUS])
          if (status !== 200) {
            readBody(request, MAX_REFUSAL_BODY, (body) => {
              fail(new HandshakeError(`bad handshake: the server answered ${status}`, status, { ...headers }, body))
            })
            return
          }
          const problem = checkAgreement(headers, offered, compression)
          if (problem !== undefined) {
            fail(new HandshakeError(`bad handshake: ${problem}`, 200, { ...headers }))
            return
          }
          settle()
          resolve(new Conn(request, {
            isServer: false,
            subprotocol: headers['sec-websocket-protocol'] ?? '',
            extensions: headers['sec-websocket-extensions'] ?? '',
            compression: negotiated(headers['sec-websocket-extensions'], compression),
            response: { statusCode: 200, headers: headers as IncomingHttpHeaders },
            options: connOptions
          }))
        })
      }).catch(fail)
    })
  }

  /** The origin's session, opened when there is none (or it is closing); counts one more user. */
  #join (origin: string, tls: ConnectionOptions | undefined): SharedSession {
    const key = `${origin} ${JSON.stringify(tls ?? {})}`
    let shared = this.#sessions.get(key)
    if (shared === undefined || shared.session.closed || shared.session.destroyed) {
      shared = openSession(origin, tls)
      const opened = shared
      this.#sessions.set(key, opened)
      opened.session.once('close', () => {
        if (this.#sessions.get(key) === opened) this.#sessions.delete(key)
      })
    }
    shared.users++
    return shared
  }

  #leave (shared: SharedSession): void {
    shared.users--
    if (shared.users === 0) shared.session.close()
  }
}

function openSession (origin: string, tls: ConnectionOptions | undefined): SharedSession {
  const session = connect(origin, { ...tls })
  // Errors reach each dial through its stream or through `ready`; the session itself must not crash the process.
  let failure: Error | undefined
  session.on('error', (err) => { failure = err })
  const ready = new Promise<Error | undefined>((resolve) => {
    session.once('remoteSettings', (settings) => {
      resolve(settings.enableConnectProtocol === true
        ? undefined
        : new HandshakeError(`bad handshake: the server at ${origin} does not allow WebSockets over HTTP/2 (it did not send SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441)`, 0))
    })
    session.once('close', () => {
      resolve(failure ?? new HandshakeError(`the HTTP/2 session to ${origin} closed before its settings arrived`, 0))
    })
  })
  return { session, ready, users: 0 }
}

/** The extended CONNECT's headers: no Sec-WebSocket-Key, `:authority` in place of Host (RFC 8441 §4). */
function buildHttp2Headers (target: URL, opts: DialOptions, offered: string[], compression: CompressionOptions | undefined): Record<string, string> {
  const headers: Record<string, string> = {}
  let authority = target.host
  for (const [name, value] of Object.entries(opts.headers ?? {})) {
    const lower = name.toLowerCase()
    if (lower === 'host') authority = value
    else headers[lower] = value
  }
  if (opts.origin !== undefined) headers.origin = opts.origin
  if (offered.length > 0) headers['sec-websocket-protocol'] = offered.join(', ')
  if (compression !== undefined) headers['sec-websocket-extensions'] = compressionOffer(compression)
  return {
    ...headers,
    [constants.HTTP2_HEADER_METHOD]: 'CONNECT',
    ':protocol': 'websocket',
    [constants.HTTP2_HEADER_SCHEME]: target.protocol === 'wss:' ? 'https' : 'http',
    [constants.HTTP2_HEADER_PATH]: target.pathname + target.search,
    [constants.HTTP2_HEADER_AUTHORITY]: authority,
    'sec-websocket-version': '13'
  }
}
