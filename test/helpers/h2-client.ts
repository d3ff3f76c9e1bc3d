// An independent HTTP/2 WebSocket peer for the RFC 8441 tests: Node's own http2 client sends the
// extended CONNECT by hand (none of lib/ is used), frames are built by frames.ts and parsed by
// raw.ts' WireReader, so the server is judged by code written apart from it.
import { connect, type ClientHttp2Session, type ClientHttp2Stream, type SecureClientSessionOptions } from 'node:http2'
import type { Socket } from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'
import { once } from 'node:events'
import { clientFrame, closePayload, WireReader } from './raw.js'

/** Connects to `origin` and waits for the server's SETTINGS frame. */
export async function connectH2 (origin: string, options: SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  const session = connect(origin, options)
  session.on('error', () => {})
  await once(session, 'remoteSettings')
  return session
}

/** One extended CONNECT stream, with the response's headers and a frame reader on the stream. */
export interface H2Socket {
  stream: ClientHttp2Stream
  status: number
  headers: IncomingHttpHeaders
  reader: WireReader
  /** The response body, for refusals (read to the end of the stream). */
  body: () => Promise<string>
  sendText: (text: string) => void
  sendBinary: (bytes: Buffer) => void
  sendClose: (code: number, reason?: string) => void
}

/** The request headers of an RFC 8441 WebSocket CONNECT to `path`, plus `extra`. */
export function connectHeaders (path: string, authority: string, extra: Record<string, string> = {}, scheme = 'http'): Record<string, string> {
  return {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': scheme,
    ':path': path,
    ':authority': authority,
    'sec-websocket-version': '13',
    ...extra
  }
}

/** Opens an extended CONNECT stream and waits for its response, whatever its status. */
export async function openStream (session: ClientHttp2Session, headers: Record<string, string>): Promise<H2Socket> {
  const stream = session.request(headers, { endStream: false })
  stream.on('error', () => {})
  const reader = new WireReader(stream as unknown as Socket)
  const received: Buffer[] = []
  stream.on('data', (chunk: Buffer) => { received.push(chunk) })
  const [response] = await once(stream, 'response') as [IncomingHttpHeaders]
  const write = (bytes: Buffer): void => { stream.write(bytes) }
  return {
    stream,
    status: Number(response[':status']),
    headers: response,
    reader,
    async body () {
      await reader.waitEnd()
      return Buffer.concat(received).toString()
    },
    sendText (text) { write(clientFrame({ opcode: 1, payload: text })) },
    sendBinary (bytes) { write(clientFrame({ opcode: 2, payload: bytes })) },
    sendClose (code, reason = '') { write(clientFrame({ opcode: 8, payload: closePayload(code, reason) })) }
  }
}

/** An extended CONNECT stream for a byte-level WireClient: no reader of its own is attached. */
export async function openWireStream (session: ClientHttp2Session, headers: Record<string, string>): Promise<{ stream: ClientHttp2Stream, status: number }> {
  const stream = session.request(headers, { endStream: false })
  stream.on('error', () => {})
  const [response] = await once(stream, 'response') as [IncomingHttpHeaders]
  return { stream, status: Number(response[':status']) }
}
