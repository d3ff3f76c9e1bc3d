import t from 'tap'
import { once } from 'node:events'
import { constants as http2constants, createServer } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import Fastify, { type FastifyServerOptions } from 'fastify'
import { Dialer, dial, DialAbortError } from '../lib/dialer.js'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { HandshakeError } from '../lib/protocol/errors.js'
import { selfSignedCert } from './helpers/tls.js'

const pair = selfSignedCert()

interface EchoServer {
  app: ReturnType<typeof Fastify>
  port: number
  /** Sessions the server accepted so far. */
  sessions: () => number
  /** Resolves once `count` sessions have closed. */
  sessionsClosed: (count: number) => Promise<void>
}

async function echoServer (options: FastifyServerOptions): Promise<EchoServer> {
  const app = Fastify(options)
  await app.register(fastifyWsconn, { compression: true, subprotocols: ['v1'] })
  let opened = 0
  let closed = 0
  let onClosed = (): void => {}
  app.server.on('session', (session: { once: (event: 'close', listener: () => void) => void }) => {
    opened++
    session.once('close', () => { closed++; onClosed() })
  })
  const sessionsClosed = async (count: number): Promise<void> => {
    if (closed >= count) return
    await new Promise<void>((resolve) => { onClosed = () => { if (closed >= count) resolve() } })
  }
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  app.get('/echo', { websocket: true }, async (conn, request) => {
    for await (const message of conn) await conn.writeMessage(message.type, `${request.raw.httpVersion} ${message.data.toString()}`)
  })
  app.get('/stall', { websocket: true, onRequest: async () => { await gate } }, () => {})
  app.addHook('onClose', async () => { release() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app: app as unknown as ReturnType<typeof Fastify>, port: (app.server.address() as AddressInfo).port, sessions: () => opened, sessionsClosed }
}

t.test('dial with http2: several WebSockets share one session, which closes with the last of them', async (t) => {
  const { app, port, sessions, sessionsClosed } = await echoServer({ http2: true } as FastifyServerOptions)
  t.teardown(() => app.close())
  const dialer = new Dialer({ http2: true })
  const conns = await Promise.all([1, 2, 3].map(async () => await dialer.dial(`ws://127.0.0.1:${port}/echo`, { subprotocols: ['v1'] })))
  for (const [i, conn] of conns.entries()) {
    t.equal(conn.response?.statusCode, 200)
    t.equal(conn.subprotocol, 'v1')
    await conn.writeMessage(1, `n${i}`)
    t.equal((await conn.readMessage()).data.toString(), `2.0 n${i}`)
  }
  t.equal(sessions(), 1, 'one HTTP/2 session carried the three WebSockets')
  await conns[0]!.close()
  await conns[1]!.close()
  const reused = await dialer.dial(`ws://127.0.0.1:${port}/echo`)
  t.equal(sessions(), 1, 'a dial while one WebSocket is still open reuses the session')
  await reused.close()
  await conns[2]!.close()
  await sessionsClosed(1)
  t.pass('the client closed the session when its last WebSocket closed')
  const fresh = await dialer.dial(`ws://127.0.0.1:${port}/echo`)
  t.equal(sessions(), 2, 'once the last WebSocket closed, the session closed too: the next dial opens another')
  await fresh.close()
  await sessionsClosed(2)
})

t.test('dial with http2 over TLS: wss://, permessage-deflate, and the same refusals as HTTP/1.1', { skip: pair === undefined ? 'openssl not found' : false }, async (t) => {
  const { app, port, sessionsClosed } = await echoServer({ http2: true, https: pair } as unknown as FastifyServerOptions)
  t.teardown(() => app.close())
  const tls = { ca: pair!.cert }
  const conn = await dial(`wss://localhost:${port}/echo`, { http2: true, tls, compression: true, origin: `https://localhost:${port}` })
  t.match(conn.extensions, /^permessage-deflate/)
  t.equal(conn.compressionNegotiated, true)
  await conn.writeMessage(1, 'x'.repeat(4096))
  t.equal((await conn.readMessage()).data.toString(), `2.0 ${'x'.repeat(4096)}`)

  const missing = await dial(`wss://localhost:${port}/nowhere`, { http2: true, tls }).catch((err: unknown) => err)
  t.type(missing, HandshakeError)
  t.equal((missing as HandshakeError).status, 404)
  t.match((missing as HandshakeError).body?.toString(), /Not Found/)
  const foreign = await dial(`wss://localhost:${port}/echo`, { http2: true, tls, origin: 'https://evil.example' }).catch((err: unknown) => err)
  t.equal((foreign as HandshakeError).status, 403)
  await conn.writeMessage(1, 'still open')
  t.equal((await conn.readMessage()).data.toString(), '2.0 still open', 'refused dials left the shared session alone')
  await conn.close()
  await sessionsClosed(1)
})

t.test('dial with http2: a server without extended CONNECT, a forbidden header, a timeout and an abort', async (t) => {
  const plain = createServer((_req, res) => { res.end() })
  plain.listen(0, '127.0.0.1')
  await once(plain, 'listening')
  t.teardown(() => { plain.close() })
  const error = await dial(`ws://127.0.0.1:${(plain.address() as AddressInfo).port}/`, { http2: true }).catch((err: unknown) => err)
  t.type(error, HandshakeError)
  t.match((error as Error).message, /does not allow WebSockets over HTTP\/2 \(it did not send SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441\)/)

  const { app, port, sessionsClosed } = await echoServer({ http2: true } as FastifyServerOptions)
  t.teardown(() => app.close())
  const dialer = new Dialer({ http2: true })
  const open = await dialer.dial(`ws://127.0.0.1:${port}/echo`)
  await t.rejects(dialer.dial(`ws://127.0.0.1:${port}/echo`, { headers: { 'Keep-Alive': 'timeout=5' } }), { code: 'ERR_HTTP2_INVALID_CONNECTION_HEADERS' })
  await t.rejects(dialer.dial(`ws://127.0.0.1:${port}/stall`, { handshakeTimeout: 50 }), { name: 'TimeoutError' })
  const controller = new AbortController()
  const aborted = dialer.dial(`ws://127.0.0.1:${port}/stall`, { signal: controller.signal })
  setImmediate(() => { controller.abort(new Error('changed my mind')) })
  const abortError = await aborted.catch((err: unknown) => err)
  t.type(abortError, DialAbortError)
  await open.writeMessage(1, 'after all that')
  t.equal((await open.readMessage()).data.toString(), '2.0 after all that', 'the session carried on')
  await open.close()
  await sessionsClosed(1)
  t.throws(() => new Dialer({ http2: 'yes' as unknown as boolean }), { name: 'TypeError', message: /option http2 must be a boolean/ })
  t.throws(() => new Dialer({ http2: true, createConnection: () => new PassThrough() }), { name: 'TypeError', message: /createConnection and http2 cannot be combined/ })
})

t.test('dial with http2 against a server that misbehaves', async (t) => {
  const server = createServer({ settings: { enableConnectProtocol: true } })
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {})
    if (headers[':path'] === '/unoffered') stream.respond({ ':status': 200, 'sec-websocket-protocol': 'nope' })
    if (headers[':path'] === '/authority') stream.respond({ ':status': 200, 'x-authority': String(headers[':authority']) })
    if (headers[':path'] === '/reset') {
      stream.respond({ ':status': 200 })
      setImmediate(() => { stream.close(http2constants.NGHTTP2_INTERNAL_ERROR) })
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`

  const unoffered = await dial(`${base}/unoffered`, { http2: true }).catch((err: unknown) => err)
  t.match(unoffered, { status: 200, message: /the server chose subprotocol "nope" but none was offered/ })

  const conn = await dial(`${base}/authority`, { http2: true, headers: { Host: 'example.test:8443' } })
  t.equal(conn.response?.headers['x-authority'], 'example.test:8443', 'a Host header becomes :authority')
  conn.terminate()

  const reset = await dial(`${base}/reset`, { http2: true })
  const error = await reset.readMessage().catch((err: unknown) => err)
  t.match(error, { code: 1006 }, 'a stream reset after the 200 is an abnormal close of the Conn')

  const controller = new AbortController()
  const fresh = new Dialer({ http2: true })
  const early = fresh.dial(`${base}/authority`, { signal: controller.signal })
  const beside = fresh.dial(`${base}/authority`)
  controller.abort()
  t.type(await early.catch((err: unknown) => err), DialAbortError, 'aborted before the session was ready: nothing is sent')
  ;(await beside).terminate()
  const alone = fresh.dial(`${base}/authority`, { signal: AbortSignal.abort() })
  t.type(await alone.catch((err: unknown) => err), DialAbortError, 'a signal aborted already')
  const lone = new AbortController()
  const lonely = new Dialer({ http2: true }).dial(`${base}/authority`, { signal: lone.signal })
  lone.abort()
  t.type(await lonely.catch((err: unknown) => err), DialAbortError, 'the only dial of a session aborted: the session closes before its settings came')
})
