import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import type { IncomingHttpHeaders } from 'node:http'
import type { EventEmitter } from 'node:events'
import { connect as tcpConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

// Flow-control windows as Chromium opens its HTTP/2 connections (6 MiB per stream, 15 MiB per
// connection), so that the generator plays a browser's part; the server keeps Node's defaults.
const STREAM_WINDOW = 6 * 1024 * 1024
const SESSION_WINDOW = 15 * 1024 * 1024
const OPEN_TIMEOUT_MS = 30_000

/** Opens an HTTP/2 session (h2c, or over TLS) to the bench server and checks that it offers RFC 8441. */
export async function openSession (port: number, tls = false): Promise<ClientHttp2Session> {
  const session = connect(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`, {
    settings: { initialWindowSize: STREAM_WINDOW },
    // As for the HTTP/1.1 clients: a small write goes out at once (http2 sockets cannot be set afterwards).
    createConnection: () => {
      if (!tls) return tcpConnect({ host: '127.0.0.1', port, noDelay: true })
      const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] })
      socket.setNoDelay(true)
      return socket
    }
  })
  session.on('error', () => {})
  try {
    await settle(session, 'remoteSettings', () => 'the HTTP/2 session closed before the server\'s SETTINGS')
  } catch (err) {
    session.destroy()
    throw err
  }
  if (session.remoteSettings.enableConnectProtocol !== true) {
    session.destroy()
    throw new Error('the server does not offer extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)')
  }
  session.setLocalWindowSize(SESSION_WINDOW)
  return session
}

/** Starts an RFC 8441 WebSocket (extended CONNECT) to `/` on `session`; see `accepted` for its response. */
export function openWebSocket (session: ClientHttp2Session, port: number, tls = false): ClientHttp2Stream {
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': tls ? 'https' : 'http',
    ':path': '/',
    ':authority': `127.0.0.1:${port}`,
    'sec-websocket-version': '13'
  }, { endStream: false })
  stream.on('error', () => {})
  return stream
}

/** Resolves when `stream` has its response: rejects unless it is the WebSocket's 200. */
export async function accepted (stream: ClientHttp2Stream): Promise<void> {
  const [headers] = await settle(stream, 'response', () => `the stream closed before its response (RST_STREAM ${stream.rstCode})`) as [IncomingHttpHeaders]
  if (Number(headers[':status']) !== 200) throw new Error(`extended CONNECT refused with ${String(headers[':status'])}`)
}

/** The arguments of `emitter`'s first `event`; rejects if it closes first or nothing comes in time. */
function settle (emitter: EventEmitter, event: string, closedFirst: () => string): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      emitter.off(event, onEvent)
      emitter.off('close', onClose)
    }
    const onEvent = (...args: unknown[]): void => { done(); resolve(args) }
    const onClose = (): void => { done(); reject(new Error(closedFirst())) }
    const timer = setTimeout(() => { done(); reject(new Error(`no ${event} within ${OPEN_TIMEOUT_MS / 1000} s`)) }, OPEN_TIMEOUT_MS)
    emitter.on(event, onEvent)
    emitter.on('close', onClose)
  })
}
