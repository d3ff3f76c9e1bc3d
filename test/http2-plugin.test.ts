import t from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { once } from 'node:events'
import { constants, inflateRawSync } from 'node:zlib'
import { constants as http2constants } from 'node:http2'
import { CloseError } from '../lib/protocol/errors.js'
import { parseClose } from './helpers/raw.js'
import { connectH2, connectHeaders, openStream } from './helpers/h2-client.js'

async function h2cApp (): Promise<{ app: { close: () => PromiseLike<unknown> }, origin: string, authority: string }> {
  const app = Fastify({ http2: true })
  await app.register(fastifyWsconn)
  app.get('/echo', { websocket: true }, async (conn) => {
    for await (const message of conn) await conn.writeMessage(message.type, message.data)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  return { app, origin: `http://127.0.0.1:${port}`, authority: `127.0.0.1:${port}` }
}

t.test('h2c: the server enables extended CONNECT; WebSockets multiplexed on one session echo and close with 1000', async (t) => {
  const { app, origin, authority } = await h2cApp()
  t.teardown(() => app.close())
  const session = await connectH2(origin)
  t.teardown(() => session.close())
  t.equal(session.remoteSettings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL = 1')
  const sockets = await Promise.all([1, 2, 3].map(async () => await openStream(session, connectHeaders('/echo', authority))))
  for (const [i, ws] of sockets.entries()) {
    t.equal(ws.status, 200)
    t.notOk('sec-websocket-accept' in ws.headers, 'no Sec-WebSocket-Accept over HTTP/2')
    ws.sendText(`text ${i}`)
    ws.sendBinary(Buffer.from([i, 0, 255]))
  }
  for (const [i, ws] of sockets.entries()) {
    const text = await ws.reader.nextMessage()
    t.same([text.opcode, text.data.toString()], [1, `text ${i}`])
    const binary = await ws.reader.nextMessage()
    t.same([binary.opcode, [...binary.data]], [2, [i, 0, 255]])
  }
  for (const ws of sockets) {
    ws.sendClose(1000, 'bye')
    t.equal(parseClose(await ws.reader.nextFrame()).code, 1000, 'the server answers the close')
    await ws.reader.waitEnd()
    ws.stream.end()
  }
  // Chromium ends its stream right behind its close frame: the answer must still come.
  const hasty = await openStream(session, connectHeaders('/echo', authority))
  hasty.sendClose(1000)
  hasty.stream.end()
  t.equal(parseClose(await hasty.reader.nextFrame()).code, 1000, 'the close is answered though the stream ended behind it')
  await once(hasty.stream, 'close')
  t.equal(session.closed, false, 'the session outlives its WebSockets')
  const again = await openStream(session, connectHeaders('/echo', authority))
  again.sendText('still here')
  t.equal((await again.reader.nextMessage()).data.toString(), 'still here')
  again.stream.close()
})

t.test('h2c: refusals are the stream\'s :status, and the session goes on after each', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  app.get('/ws', { websocket: true }, async (conn) => { await conn.close() })
  app.get('/guarded', {
    websocket: true,
    onRequest: async (request, reply) => {
      if (request.headers.authorization !== 'Bearer ok') await reply.code(401).send({ error: 'no token' })
    }
  }, async (conn, request) => { await conn.writeMessage(1, `method ${request.method}`); await conn.close() })
  app.get('/plain', async () => ({ plain: true }))
  app.get<{ Params: { id: number }, Querystring: { n: number } }>('/items/:id', {
    websocket: true,
    schema: {
      params: { type: 'object', properties: { id: { type: 'integer' } } },
      querystring: { type: 'object', properties: { n: { type: 'integer', maximum: 9 } }, required: ['n'] }
    }
  }, async (conn, request) => {
    await conn.writeMessage(1, JSON.stringify([request.params.id, request.query.n]))
    await conn.close()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const authority = `127.0.0.1:${port}`
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())
  const statusOf = async (path: string, extra: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, body: string }> => {
    const ws = await openStream(session, connectHeaders(path, authority, extra))
    const body = ws.status === 200 ? '' : await ws.body()
    if (ws.status === 200) ws.stream.close()
    return { status: ws.status, headers: ws.headers, body }
  }
  t.equal((await statusOf('/nowhere')).status, 404, 'unknown path')
  const plain = await statusOf('/plain')
  t.equal(plain.status, 400, 'a route that is not a websocket route')
  t.match(plain.body, /FST_WS_NOT_WEBSOCKET_ROUTE/)
  const hooked = await statusOf('/guarded')
  t.equal(hooked.status, 401, 'a hook\'s reply is the stream\'s response')
  t.same(JSON.parse(hooked.body), { error: 'no token' })
  const version = await statusOf('/ws', { 'sec-websocket-version': '8' })
  t.equal(version.status, 426, 'a version other than 13')
  t.equal(version.headers['sec-websocket-version'], '13')
  t.equal((await statusOf('/ws', { origin: 'https://evil.example' })).status, 403, 'another origin')
  t.equal((await statusOf('/items/x?n=1')).status, 400, 'params schema')
  t.equal((await statusOf('/items/3?n=10')).status, 400, 'querystring schema')

  const guarded = await openStream(session, connectHeaders('/guarded', authority, { authorization: 'Bearer ok' }))
  t.equal(guarded.status, 200, 'the hook lets it through')
  t.equal((await guarded.reader.nextMessage()).data.toString(), 'method GET', 'the CONNECT is routed as the GET it stands for')
  t.equal(parseClose(await guarded.reader.nextFrame()).code, 1000)
  guarded.stream.close()
  const items = await openStream(session, connectHeaders('/items/7?n=2', authority, { origin: `http://${authority}` }))
  t.equal(items.status, 200, 'same origin, valid params')
  t.equal((await items.reader.nextMessage()).data.toString(), '[7,2]', 'params and query coerced by their schemas')
  items.stream.close()

  const get = session.request({ ':method': 'GET', ':path': '/ws' })
  const [response] = await once(get, 'response') as [Record<string, unknown>]
  get.resume()
  t.equal(response[':status'], 426, 'a plain GET to a websocket-only route')
  t.equal(session.closed || session.destroyed, false, 'no refusal touched the session')
})

t.test('h2c: subprotocols and permessage-deflate are negotiated in the 200', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, { compression: true, subprotocols: ['chat.v2', 'chat.v1'] })
  app.get('/chat', { websocket: true }, async (conn) => {
    await conn.writeMessage(1, `${conn.subprotocol} ${String(conn.compressionNegotiated)}`)
    const message = await conn.readMessage()
    await conn.writeMessage(1, message.data.toString().repeat(3))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const authority = `127.0.0.1:${port}`
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())
  const ws = await openStream(session, connectHeaders('/chat', authority, {
    'sec-websocket-protocol': 'chat.v1, chat.v2',
    'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover; client_max_window_bits'
  }))
  t.equal(ws.status, 200)
  t.equal(ws.headers['sec-websocket-protocol'], 'chat.v1', 'the client\'s first supported choice')
  t.match(ws.headers['sec-websocket-extensions'], /^permessage-deflate/)
  const hello = await ws.reader.nextMessage()
  t.equal(hello.frames[0]!.rsv, 0, 'a short message goes out uncompressed (below the threshold)')
  t.equal(hello.data.toString(), 'chat.v1 true')
  const long = 'compress me '.repeat(200)
  ws.sendText(long)
  const echoed = await ws.reader.nextMessage()
  t.equal(echoed.frames[0]!.rsv, 0b100, 'RSV1: compressed')
  const inflated = inflateRawSync(Buffer.concat([echoed.data, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH })
  t.equal(inflated.toString(), long.repeat(3))
  ws.stream.close()
})

t.test('h2c: a stream reset is an abnormal close (1006) after every delivered message; the session\'s other streams go on', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  const seen: string[] = []
  let ended!: (error: unknown) => void
  const endedOnServer = new Promise<unknown>((resolve) => { ended = resolve })
  app.get('/record', { websocket: true }, async (conn) => {
    try {
      for (;;) {
        const message = await conn.readMessage()
        seen.push(message.data.toString())
        if (seen.length === 2) await conn.writeMessage(1, 'got two')
      }
    } catch (err) {
      ended(err)
    }
  })
  app.get('/echo', { websocket: true }, async (conn) => {
    for await (const message of conn) await conn.writeMessage(message.type, message.data)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const authority = `127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())
  const other = await openStream(session, connectHeaders('/echo', authority))
  const doomed = await openStream(session, connectHeaders('/record', authority))
  doomed.sendText('one')
  doomed.sendText('two')
  t.equal((await doomed.reader.nextMessage()).data.toString(), 'got two')
  doomed.stream.close(http2constants.NGHTTP2_CANCEL)
  const error = await endedOnServer as CloseError
  t.type(error, CloseError)
  t.equal(error.code, 1006, 'abnormal closure')
  t.same(seen, ['one', 'two'], 'nothing delivered was lost')
  other.sendText('after the reset')
  t.equal((await other.reader.nextMessage()).data.toString(), 'after the reset', 'the other stream goes on')
  t.equal(app.websocketConnections.size, 1)
  other.stream.close()
})

t.test('h2c: heartbeats, JSON schemas, websocketConnections and shutdown with 1001 over streams', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(fastifyWsconn, { pingInterval: 50 })
  app.get('/json', {
    websocket: true,
    schema: {
      incoming: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
      outgoing: { type: 'object', properties: { double: { type: 'integer' } }, required: ['double'] }
    }
  }, async (conn) => {
    for (;;) {
      const { n } = await conn.readJSON() as { n: number }
      await conn.writeJSON({ double: n * 2 })
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const authority = `127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())
  const sockets = [await openStream(session, connectHeaders('/json', authority)), await openStream(session, connectHeaders('/json', authority))]
  t.equal(app.websocketConnections.size, 2)
  sockets[0]!.sendText('{"n":21}')
  const reply = await sockets[0]!.reader.nextMessage()
  t.same(JSON.parse(reply.data.toString()), { double: 42 })
  const ping = await sockets[1]!.reader.nextFrame()
  t.equal(ping.opcode, 9, 'the heartbeat pings over the stream')
  sockets[1]!.sendText('{"n":"x"}')
  t.equal(parseClose(await sockets[1]!.reader.nextFrame()).code, 1007, 'an invalid message closes with 1007 as over HTTP/1.1')
  // Node keeps an HTTP/2 server open while a session is (Fastify ends them with forceCloseConnections).
  const closing = app.close()
  let frame = await sockets[0]!.reader.nextFrame()
  while (frame.opcode !== 8) frame = await sockets[0]!.reader.nextFrame()
  t.equal(parseClose(frame).code, 1001, 'shutdown closes with 1001')
  sockets[0]!.sendClose(1001)
  await sockets[0]!.reader.waitEnd()
  sockets[0]!.stream.end()
  await once(sockets[0]!.stream, 'close')
  session.close()
  await closing
  t.equal(app.websocketConnections.size, 0)
})

t.test('h2c: other CONNECT requests, routing failures, and 503 while closing', async (t) => {
  let releaseHook!: () => void
  const hookGate = new Promise<void>((resolve) => { releaseHook = resolve })
  let hookReached!: () => void
  const inHook = new Promise<void>((resolve) => { hookReached = resolve })
  const app = Fastify({
    http2: true,
    rewriteUrl: (request) => {
      if (request.url === '/boom') throw new Error('rewrite exploded')
      return request.url ?? '/'
    }
  })
  await app.register(fastifyWsconn)
  app.get('/ws', { websocket: true }, async (conn) => { await conn.close() })
  app.get('/slow', {
    websocket: true,
    onRequest: async () => { hookReached(); await hookGate }
  }, async (conn) => { await conn.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const authority = `127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const session = await connectH2(`http://${authority}`)
  // A failed assertion below must not leave the hook waiting or the session open (the test would hang).
  t.teardown(() => {
    releaseHook()
    session.destroy()
  })

  const statusOf = async (headers: Record<string, string>): Promise<number> => {
    const stream = session.request(headers, { endStream: false })
    stream.on('error', () => {})
    const [response] = await once(stream, 'response') as [Record<string, unknown>]
    stream.close()
    return Number(response[':status'])
  }
  t.equal(await statusOf({ ':method': 'CONNECT', ':authority': 'example.com:443' }), 405, 'a proxy CONNECT, as Node answers it')
  t.equal(await statusOf({ ...connectHeaders('/ws', authority), ':protocol': 'webtransport' }), 405, 'an extended CONNECT for another protocol')
  const other = (_req: unknown, res: { writeHead: (status: number) => { end: () => void } }): void => { res.writeHead(204).end() }
  app.server.on('connect', other)
  t.equal(await statusOf({ ':method': 'CONNECT', ':authority': 'example.com:443' }), 204, 'left to another listener')
  app.server.off('connect', other)

  const boom = session.request(connectHeaders('/boom', authority), { endStream: false })
  boom.on('error', () => {})
  let answered = false
  boom.on('response', () => { answered = true })
  await once(boom, 'close')
  t.equal(answered, false, 'a routing failure resets the stream unanswered')
  t.equal(session.closed, false)

  const slow = openStream(session, connectHeaders('/slow', authority))
  await inHook
  const closing = app.close()
  // Refused with 503 by the plugin, or (Node 24, where closing the server sends GOAWAY at once) by
  // HTTP/2 itself with REFUSED_STREAM: either way no WebSocket opens.
  const refused = await openStream(session, connectHeaders('/ws', authority)).then(
    (response) => response.status,
    (error: NodeJS.ErrnoException) => /NGHTTP2_REFUSED_STREAM/.test(error.message) ? 'REFUSED_STREAM' : error.message)
  t.ok(refused === 503 || refused === 'REFUSED_STREAM', `a new WebSocket while closing is refused (${String(refused)})`)
  releaseHook()
  const late = await slow
  t.equal(late.status, 503, 'one whose hooks ran while the server began closing')
  t.same(JSON.parse(await late.body()), { error: 'Service Unavailable', message: 'Service Unavailable', statusCode: 503 })
  session.close()
  await closing
})

t.test('h2c: topics reach WebSockets on HTTP/2 streams and on HTTP/1.1 alike', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  app.get('/room', { websocket: true }, async (conn) => {
    conn.subscribe('room')
    conn.send('subscribed')
    for await (const message of conn) await conn.publish('room', message.data.toString())
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const authority = `127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const session = await connectH2(`http://${authority}`)
  t.teardown(() => session.close())
  const [alice, bob] = [await openStream(session, connectHeaders('/room', authority)), await openStream(session, connectHeaders('/room', authority))]
  for (const ws of [alice!, bob!]) t.equal((await ws.reader.nextMessage()).data.toString(), 'subscribed')
  t.equal(app.websocketSubscriberCount('room'), 2)
  alice!.sendText('hello room')
  for (const ws of [alice!, bob!]) t.equal((await ws.reader.nextMessage()).data.toString(), 'hello room', 'published once, delivered on each stream')
  const result = await app.websocketPublish('room', 'from the server')
  t.match(result, { delivered: 2 })
  for (const ws of [alice!, bob!]) t.equal((await ws.reader.nextMessage()).data.toString(), 'from the server')
  alice!.stream.close()
  bob!.stream.close()
})

t.test('h2c: HTTP/2 flow control is the backpressure: an awaited write waits for the stream\'s window', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  const big = Buffer.alloc(200_000, 7)
  let written = false
  let buffered = 0
  app.get('/big', { websocket: true }, async (conn) => {
    const write = conn.writeMessage(2, big)
    buffered = conn.bufferedAmount
    await write
    written = true
  })
  app.get('/echo', { websocket: true }, async (conn) => {
    for await (const message of conn) await conn.writeMessage(message.type, message.data)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const authority = `127.0.0.1:${(app.server.address() as AddressInfo).port}`
  // Streams start with no window at all: the server may send headers but no DATA.
  const session = await connectH2(`http://${authority}`, { settings: { initialWindowSize: 0 } })
  t.teardown(() => session.close())
  const stalled = await openStream(session, connectHeaders('/big', authority))
  t.equal(stalled.status, 200)
  // A round trip on another stream lets the server run well past the start of the big write.
  const other = await openStream(session, connectHeaders('/echo', authority))
  t.equal(other.status, 200)
  t.equal(written, false, 'the write waits: the stream has no window')
  t.ok(buffered >= big.length, 'the message waits in the stream\'s buffer')
  // SETTINGS_INITIAL_WINDOW_SIZE applies to open streams too (RFC 9113 §6.9.2).
  session.settings({ initialWindowSize: 1 << 20 })
  const message = await stalled.reader.nextMessage()
  t.equal(message.data.length, big.length, 'once the window opens the whole message arrives')
  t.equal(written, true)
  stalled.stream.close()
  other.stream.close()
})
