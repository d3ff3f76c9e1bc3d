import t, { type Test } from 'tap'
import { once } from 'node:events'
import { createServer, type Http2ServerRequest } from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { Conn } from '../lib/conn/conn.js'
import { HandshakeError } from '../lib/protocol/errors.js'
import { Upgrader, type UpgraderOptions } from '../lib/upgrader.js'
import { connectH2, connectHeaders, openStream } from './helpers/h2-client.js'

/** A bare node:http2 server (no Fastify) whose 'connect' listener hands each CONNECT to `upgrader.upgradeStream`. */
async function serve (t: Test, options: UpgraderOptions, before?: (req: Http2ServerRequest) => void | Promise<void>): Promise<{ authority: string, results: Array<Promise<Conn>> }> {
  const upgrader = new Upgrader(options)
  const results: Array<Promise<Conn>> = []
  const server = createServer({ settings: { enableConnectProtocol: true } }, (_req, res) => { res.end() })
  server.on('connect', (req: Http2ServerRequest) => {
    const result = (async () => { await before?.(req); return await upgrader.upgradeStream(req) })()
    result.catch(() => {})
    results.push(result)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return { authority: `127.0.0.1:${(server.address() as AddressInfo).port}`, results }
}

async function handshakeError (promise: Promise<Conn> | undefined): Promise<HandshakeError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof HandshakeError) return err
    throw err
  }
  throw new Error('the handshake succeeded')
}

t.test('upgradeStream on a bare node:http2 server: a Conn over the stream, and its refusals', async (t) => {
  const { authority, results } = await serve(t, { subprotocols: ['v1'], checkOrigin: (req) => req.headers.origin !== 'https://no.example' })
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())

  const ws = await openStream(session, connectHeaders('/', authority, { 'sec-websocket-protocol': 'v1' }))
  t.equal(ws.status, 200)
  t.equal(ws.headers['sec-websocket-protocol'], 'v1')
  const conn = await results[0]!
  t.equal(conn.subprotocol, 'v1')
  // Over HTTP/2 the addresses are those of the session's TCP connection.
  t.same([conn.remoteAddress, conn.localAddress, conn.localPort], ['127.0.0.1', '127.0.0.1', Number(authority.split(':')[1])])
  t.equal(conn.remotePort, (session.socket as unknown as { localPort: number }).localPort, 'the peer port is the client session\'s local port')
  ws.sendText('to the server')
  t.equal((await conn.readMessage()).data.toString(), 'to the server')
  await conn.writeMessage(2, Buffer.from([7]))
  t.same([...(await ws.reader.nextMessage()).data], [7])
  conn.terminate()
  await once(ws.stream, 'close')
  t.equal(session.closed, false, 'terminate() resets the stream, never the session')

  const forbidden = await openStream(session, connectHeaders('/', authority, { origin: 'https://no.example' }))
  t.equal(forbidden.status, 403)
  t.match(await forbidden.body(), /request origin not allowed by checkOrigin: Origin "https:\/\/no.example", Host "127.0.0.1:\d+"/, 'the refusal quotes :authority as the Host')
  t.equal((await handshakeError(results[1])).status, 403)
})

t.test('the addresses of a Conn whose session is gone are undefined, not an error', async (t) => {
  const { authority, results } = await serve(t, {})
  const session = await connectH2(`http://${authority}`)
  await openStream(session, connectHeaders('/', authority))
  const conn = await results[0]!
  t.equal(conn.remoteAddress, '127.0.0.1')
  session.destroy()
  await conn.closed
  t.same([conn.remoteAddress, conn.localAddress, conn.remotePort, conn.localPort], [undefined, undefined, undefined, undefined])
})

t.test('upgradeStream: another :protocol is refused with 400', async (t) => {
  const { authority, results } = await serve(t, {})
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())
  const other = await openStream(session, { ...connectHeaders('/', authority), ':protocol': 'webtransport' })
  t.equal(other.status, 400)
  t.match((await handshakeError(results[0])).message, /':protocol' must be 'websocket'/)
})

t.test('upgradeStream: a header HTTP/2 forbids is a server error (500), not a crash', async (t) => {
  const { authority, results } = await serve(t, { headers: { 'Keep-Alive': 'timeout=5' } })
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())
  const ws = await openStream(session, connectHeaders('/', authority))
  t.equal(ws.status, 500)
  const error = await handshakeError(results[0])
  t.equal(error.status, 500)
  t.match(error.message, /the 200 response could not be sent/)
})

t.test('upgradeStream: a stream that is gone, ended or reset during the checks', async (t) => {
  let release!: () => void
  const gate = new Promise<boolean>((resolve) => { release = () => { resolve(true) } })
  const { authority, results } = await serve(t, {
    // Synchronous for the stream it destroys, so the refusal comes before the stream's 'close'.
    checkOrigin: (req) => {
      if (req.headers.origin === 'http://destroy.example') {
        (req as unknown as Http2ServerRequest).stream.destroy()
        return false
      }
      return gate
    }
  }, async (req) => {
    if (req.headers['x-case'] === 'destroyed') req.stream.destroy()
    if (req.headers['x-case'] === 'read to the end') {
      req.stream.resume()
      await once(req.stream, 'end')
    }
  })
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())

  session.request(connectHeaders('/', authority, { 'x-case': 'destroyed' }), { endStream: false }).on('error', () => {})
  while (results.length < 1) await new Promise((resolve) => setImmediate(resolve))
  t.match(await handshakeError(results[0]), { status: 0, message: 'stream already closed' })

  const ended = session.request(connectHeaders('/', authority), { endStream: true })
  ended.on('error', () => {})
  while (results.length < 2) await new Promise((resolve) => setImmediate(resolve))
  t.equal((await handshakeError(results[1])).status, 0, 'a stream the client ended can never carry a WebSocket')
  const endSeen = session.request(connectHeaders('/', authority, { 'x-case': 'read to the end' }), { endStream: true })
  endSeen.on('error', () => {})
  while (results.length < 3) await new Promise((resolve) => setImmediate(resolve))
  t.match(await handshakeError(results[2]), { status: 0, message: /ended its stream before the handshake/ }, 'nor one whose end was already read')

  const reset = session.request(connectHeaders('/', authority), { endStream: false })
  reset.on('error', () => {})
  while (results.length < 4) await new Promise((resolve) => setImmediate(resolve))
  reset.close(8)
  t.equal((await handshakeError(results[3])).status, 0, 'reset while checkOrigin ran')
  release()

  session.request(connectHeaders('/', authority, { origin: 'http://destroy.example' }), { endStream: false }).on('error', () => {})
  while (results.length < 5) await new Promise((resolve) => setImmediate(resolve))
  t.equal((await handshakeError(results[4])).status, 403, 'a stream the check destroyed is refused without a response')
  t.equal(session.closed, false, 'the session survived every case')
})
