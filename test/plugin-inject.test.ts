import t from 'tap'
import { once } from 'node:events'
import Fastify, { type FastifyInstance } from 'fastify'
import { computeAcceptKey } from '../lib/handshake.js'
import { HandshakeError } from '../lib/protocol/errors.js'
import { createDuplexPair } from '../lib/plugin/duplex-pair.js'
import { fastifyWsconn } from '../lib/plugin/index.js'

type Teardown = { teardown: (fn: () => unknown) => void }

async function build (t: Teardown, setup: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  setup(app)
  return app
}

t.test('injectWS opens a client Conn through hooks and handshake without a port', async (t) => {
  const seen: unknown[] = []
  const app = await build(t, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers.authorization !== 'Bearer ok') await reply.code(401).send({ error: 'no token' })
    })
    app.get('/echo/:room', { websocket: { subprotocols: ['chat'] } }, async (conn, request) => {
      seen.push({ ws: request.ws, room: (request.params as { room: string }).room, host: request.headers.host, ip: request.ip })
      for await (const message of conn) await conn.writeMessage(message.type, message.data)
    })
  })
  // Not listening, not even ready: injectWS readies the app itself.
  const conn = await app.injectWS('/echo/lobby', { headers: { Authorization: 'Bearer ok' }, subprotocols: ['other', 'chat'] })
  t.equal(conn.isServer, false)
  t.equal(conn.subprotocol, 'chat')
  t.equal(conn.response?.statusCode, 101)
  t.equal(app.server.listening, false)
  await conn.writeMessage(1, 'hello')
  t.equal((await conn.readMessage()).data.toString(), 'hello')
  t.same(seen, [{ ws: true, room: 'lobby', host: 'localhost', ip: '127.0.0.1' }])
  await conn.close()

  const refused = await app.injectWS('/echo/lobby').catch((err: unknown) => err)
  t.type(refused, HandshakeError)
  t.equal((refused as HandshakeError).status, 401)
  t.same(JSON.parse((refused as HandshakeError).body.toString()), { error: 'no token' })
  t.equal((refused as HandshakeError).headers['content-type'], 'application/json; charset=utf-8')

  const missing = await app.injectWS('/nowhere', { headers: { Authorization: 'Bearer ok' } }).catch((err: unknown) => err)
  t.equal((missing as HandshakeError).status, 404)
})

t.test('injectWS: headers, Host override, large messages in both directions', async (t) => {
  const app = await build(t, (app) => {
    app.get('/big', { websocket: { readLimit: 8 * 1024 * 1024 } }, async (conn, request) => {
      const message = await conn.readMessage()
      await conn.writeMessage(2, Buffer.concat([Buffer.from(request.headers.host ?? ''), message.data]))
    })
  })
  const conn = await app.injectWS('/big', { headers: { host: 'example.test' }, readLimit: 8 * 1024 * 1024 })
  const payload = Buffer.alloc(5 * 1024 * 1024, 7)
  await conn.writeMessage(2, payload)
  const reply = await conn.readMessage()
  t.equal(reply.data.subarray(0, 12).toString(), 'example.test')
  t.equal(reply.data.length, 12 + payload.length)
  await conn.close()
})

t.test('injectWS rejects bad arguments', async (t) => {
  const app = await build(t, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  })
  await t.rejects(app.injectWS('/has space'), { code: 'ERR_UNESCAPED_CHARACTERS' })
  await t.rejects(app.injectWS('/ws', { readLimit: -1 }), RangeError)
})

t.test('injectWS checks the 101 it gets', async (t) => {
  const app = await build(t, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      const key = String(request.headers['sec-websocket-key'])
      const accept = request.url === '/bad-accept' ? computeAcceptKey('something else') : computeAcceptKey(key)
      const protocol = request.url === '/bad-protocol' ? 'Sec-WebSocket-Protocol: unoffered\r\n' : ''
      reply.hijack()
      request.raw.socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n${protocol}\r\n`)
    })
    app.get('/bad-accept', { websocket: true }, () => {})
    app.get('/bad-protocol', { websocket: true }, () => {})
  })
  await t.rejects(app.injectWS('/bad-accept'), { name: 'HandshakeError', status: 101, message: /Sec-WebSocket-Accept/ })
  await t.rejects(app.injectWS('/bad-protocol', { subprotocols: ['chat'] }), { name: 'HandshakeError', message: /"unoffered", which was not offered/ })
})

t.test('injected connections take part in the shutdown', async (t) => {
  const app = await build(t, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  })
  const conn = await app.injectWS('/ws')
  // The client may see the 101 a moment before the server lists the connection.
  while (app.websocketConnections.size === 0) await new Promise((resolve) => setImmediate(resolve))
  t.equal(app.websocketConnections.size, 1)
  await app.close()
  await t.rejects(conn.readMessage(), { code: 1001, text: 'server shutting down' })
})

t.test('the in-memory pipe behaves like a connection', async (t) => {
  t.test('bytes flow both ways, with backpressure', async (t) => {
    const [a, b] = createDuplexPair()
    const received: Buffer[] = []
    b.on('data', (chunk: Buffer) => received.push(chunk))
    const big = Buffer.alloc(1024 * 1024, 1)
    // Pause the reader: the writer must wait instead of buffering without bound.
    b.pause()
    let flushed = false
    a.write(big, () => { flushed = true })
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.equal(flushed, false, 'the write waits while the peer does not read')
    b.resume()
    await new Promise<void>((resolve) => a.write(Buffer.alloc(0), () => resolve()))
    t.equal(flushed, true)
    t.equal(Buffer.concat(received).length, big.length)
    a.destroy()
    b.destroy()
  })

  t.test('end on one side ends the other', async (t) => {
    const [a, b] = createDuplexPair()
    b.resume()
    a.resume()
    const ended = once(b, 'end')
    // allowHalfOpen is false, so both ends close.
    const closed = Promise.all([once(a, 'close'), once(b, 'close')])
    a.end('last words')
    await ended
    await closed
    t.pass('both closed')
  })

  t.test('destroying one side ends the other, releases a pending write and swallows later writes', async (t) => {
    const [a, b] = createDuplexPair()
    b.pause()
    let released = false
    a.write(Buffer.alloc(1024 * 1024), () => { released = true })
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.equal(released, false)
    b.destroy()
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.equal(released, true, 'the writer is not left hanging')
    const aEnded = once(a, 'end')
    a.resume()
    await aEnded
    const [c, d] = createDuplexPair()
    const dClosed = once(d, 'close')
    d.destroy()
    await dClosed
    await new Promise<void>((resolve) => c.write('into the void', () => resolve()))
    t.pass('a write to a destroyed peer completes')
    c.destroy()
  })

  t.test('socket-like extras', async (t) => {
    const [a, b] = createDuplexPair()
    t.equal(a.setNoDelay(), a)
    t.equal(a.setKeepAlive(), a)
    t.equal(a.setTimeout(), a)
    t.equal(a.remoteAddress, '127.0.0.1')
    t.equal(a.remoteFamily, 'IPv4')
    t.equal(a.encrypted, false)
    a.destroy()
    b.destroy()
  })
})
