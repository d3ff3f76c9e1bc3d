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
      const extension = request.url === '/bad-extension' ? 'Sec-WebSocket-Extensions: permessage-deflate\r\n' : ''
      reply.hijack()
      request.raw.socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n${protocol}${extension}\r\n`)
    })
    app.get('/bad-accept', { websocket: true }, () => {})
    app.get('/bad-protocol', { websocket: true }, () => {})
    app.get('/bad-extension', { websocket: true }, () => {})
  })
  await t.rejects(app.injectWS('/bad-accept'), { name: 'HandshakeError', status: 101, message: /Sec-WebSocket-Accept/ })
  await t.rejects(app.injectWS('/bad-protocol', { subprotocols: ['chat'] }), { name: 'HandshakeError', message: /"unoffered", which was not offered/ })
  // The Dialer's own check and message: an extension the client never offered.
  await t.rejects(app.injectWS('/bad-extension'), {
    name: 'HandshakeError', status: 101, message: 'websocket: bad handshake: the server chose extensions "permessage-deflate" but none were offered'
  })
})

t.test('injected connections take part in the shutdown', async (t) => {
  const app = await build(t, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  })
  const conn = await app.injectWS('/ws')
  t.equal(app.websocketConnections.size, 1)
  await app.close()
  await t.rejects(conn.readMessage(), { code: 1001, text: 'server shutting down' })
})

t.test('injectWS resolves once the server lists the connection', async (t) => {
  const app = await build(t, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  })
  const conns = []
  for (let i = 1; i <= 3; i++) {
    conns.push(await app.injectWS('/ws'))
    t.equal(app.websocketConnections.size, i, `counted as soon as injectWS resolves (${i})`)
  }
  t.ok([...app.websocketConnections].every((conn) => conn.isServer))
  for (const conn of conns) await conn.close()
})

t.test('injectWS to a connection the server closes at once still resolves', async (t) => {
  const app = await build(t, (app) => {
    // Closed at once and never read: the server's socket may close before injectWS looks.
    app.get('/bye', { websocket: true }, (conn) => { conn.terminate() })
  })
  const conn = await app.injectWS('/bye')
  await conn.closed
  t.equal(app.websocketConnections.size, 0)
})

t.test('injectWS negotiates permessage-deflate with a compressed route', async (t) => {
  const app = await build(t, (app) => {
    app.get('/zip', { websocket: { compression: true } }, async (conn) => {
      // The first byte of each frame from the client, as it crossed the pipe.
      const firstBytes: number[] = []
      conn.socket.on('data', (chunk: Buffer) => firstBytes.push(chunk[0]))
      const message = await conn.readMessage()
      const rsv1 = (firstBytes[0] & 0x40) === 0x40
      await conn.writeMessage(1, JSON.stringify({ negotiated: conn.compressionNegotiated, rsv1, echo: message.data.toString() }))
    })
    app.get('/plain', { websocket: true }, async (conn) => { await conn.writeMessage(1, 'plain') })
  })
  const conn = await app.injectWS('/zip', { compression: true })
  t.equal(conn.compressionNegotiated, true)
  t.match(conn.extensions, /^permessage-deflate/)
  t.equal(conn.response?.headers['sec-websocket-extensions'], conn.extensions)
  const received: Buffer[] = []
  conn.socket.on('data', (chunk: Buffer) => received.push(chunk))
  const text = 'the same words again and again, '.repeat(64)
  await conn.writeMessage(1, text)
  const reply = await conn.readMessage()
  t.same(JSON.parse(reply.data.toString()), { negotiated: true, rsv1: true, echo: text }, 'the client sent RSV1')
  const frame = Buffer.concat(received)
  t.equal(frame[0], 0xc1, 'the server answered with FIN, RSV1 and text')
  t.ok(frame.length < reply.data.length, 'on the wire the reply is smaller than the message')
  await conn.close()

  // A route without compression declines the offer; the connection goes on uncompressed.
  const plain = await app.injectWS('/plain', { compression: true })
  t.equal(plain.compressionNegotiated, false)
  t.equal(plain.extensions, '')
  t.equal((await plain.readMessage()).data.toString(), 'plain')
  await plain.close()
})

t.test('injectWS readies the app as app.inject does, and refuses once it is closed', async (t) => {
  const app = Fastify()
  await app.register(fastifyWsconn)
  app.get('/ws', { websocket: true }, async (conn) => { await conn.writeMessage(1, 'ready') })
  // Neither ready() nor listen() was called.
  const conn = await app.injectWS('/ws')
  t.equal((await conn.readMessage()).data.toString(), 'ready')
  await conn.close()
  await app.close()
  await t.rejects(app.injectWS('/ws'), { code: 'FST_ERR_REOPENED_CLOSE_SERVER' })
  await t.rejects(app.inject('/ws'), { code: 'FST_ERR_REOPENED_CLOSE_SERVER' }, 'as app.inject does')
})

t.test('injectWS reads its path as app.inject does', async (t) => {
  const app = await build(t, (app) => {
    app.get('/*', { websocket: true }, async (conn, request) => { await conn.writeMessage(1, request.url) })
  })
  for (const [path, url] of [['/a/b?x=1', '/a/b?x=1'], ['relative?y=2', '/relative?y=2'], ['//twice', '//twice'], [undefined, '/']]) {
    const conn = await app.injectWS(path)
    t.equal((await conn.readMessage()).data.toString(), url, `${String(path)} reaches ${url}`)
    await conn.close()
  }
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
