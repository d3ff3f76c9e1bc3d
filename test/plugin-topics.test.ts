// Topics through the plugin, over real TCP with `ws` clients: handlers subscribe their connection,
// any route publishes with app.websocketPublish, publishJSON from a handler goes through the
// route's schema.outgoing serializer once, compressed and plain subscribers share a publish, route
// options set the slow-consumer limit, and app.close() leaves no subscriber behind.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { Hub } from '../lib/hub/hub.js'
import { RecordingClient } from './helpers/topic-clients.js'
import { closeOf, listen } from './helpers/plugin.js'

async function openRecording (url: string, options: WebSocket.ClientOptions = {}): Promise<RecordingClient> {
  const client = new RecordingClient(new WebSocket(url, options))
  await new Promise((resolve, reject) => {
    client.ws.once('open', resolve)
    client.ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)))
  })
  return client
}

async function chatApp (t: { teardown: (fn: () => unknown) => void }): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(fastifyWsconn, { compression: true, maxBufferedAmount: 64 * 1024, slowConsumerPolicy: 'drop' })
  app.get<{ Params: { room: string } }>('/rooms/:room', {
    websocket: true,
    schema: {
      outgoing: { type: 'object', properties: { room: { type: 'string' }, text: { type: 'string' } }, required: ['room', 'text'] }
    }
  }, async (conn, request) => {
    const topic = `room:${request.params.room}`
    conn.subscribe(topic)
    conn.send('subscribed')
    for await (const message of conn) {
      // `secret` is not in schema.outgoing: the route's serializer leaves it out.
      await conn.publishJSON(topic, { room: request.params.room, text: message.data.toString(), secret: 'x' })
    }
  })
  app.get('/limits', { websocket: { maxBufferedAmount: 0, slowConsumerPolicy: 'close' } }, async (conn) => {
    conn.subscribe('limits')
    conn.send('subscribed')
  })
  app.post<{ Params: { room: string }, Body: string }>('/rooms/:room/announce', async (request) => {
    const result = await app.websocketPublish(`room:${request.params.room}`, `announcement: ${request.body}`)
    return { ...result, subscribers: app.websocketSubscriberCount(`room:${request.params.room}`) }
  })
  const port = await listen(app)
  t.teardown(() => app.close())
  return { app, url: `ws://127.0.0.1:${port}` }
}

t.test('handlers subscribe, any route publishes, publishJSON uses the route serializer', async (t) => {
  const { app, url } = await chatApp(t)
  const compressed = await openRecording(`${url}/rooms/a`, { perMessageDeflate: true })
  const plain = await openRecording(`${url}/rooms/a`, { perMessageDeflate: false })
  const elsewhere = await openRecording(`${url}/rooms/b`)
  await Promise.all([compressed, plain, elsewhere].map(async (client) => await client.waitFor(1)))
  t.equal(app.websocketSubscriberCount('room:a'), 2)
  t.ok(app.websocketHub instanceof Hub)

  plain.ws.send('hello')
  await Promise.all([compressed.waitFor(2), plain.waitFor(2)])
  for (const client of [compressed, plain]) t.same(JSON.parse(client.texts()[1]!), { room: 'a', text: 'hello' }, 'serialised by schema.outgoing')
  t.equal((compressed.ws as unknown as { _extensions: Record<string, unknown> })._extensions['permessage-deflate'] !== undefined, true, 'one client compressed')

  const response = await app.inject({ method: 'POST', url: '/rooms/a/announce', payload: 'lunch', headers: { 'content-type': 'text/plain' } })
  t.same(response.json(), { delivered: 2, dropped: 0, closed: 0, subscribers: 2 })
  await Promise.all([compressed.waitFor(3), plain.waitFor(3)])
  t.same([compressed.texts()[2], plain.texts()[2]], ['announcement: lunch', 'announcement: lunch'])
  t.same(elsewhere.texts(), ['subscribed'], 'room b heard nothing')
  const json = await app.websocketPublishJSON('room:b', { n: 1 })
  t.same(json, { delivered: 1, dropped: 0, closed: 0 })
  await elsewhere.waitFor(2)
  t.equal(elsewhere.texts()[1], '{"n":1}')

  plain.ws.close()
  await closeOf(plain.ws)
  await t.resolves(waitUntil(() => app.websocketSubscriberCount('room:a') === 1), 'a closed connection left its room')
})

t.test('route options set the slow-consumer limit, and bad values fail at declaration', async (t) => {
  const { app, url } = await chatApp(t)
  const client = await openRecording(`${url}/limits`)
  await client.waitFor(1)
  ;(client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  const chunk = Buffer.alloc(256 * 1024)
  for (let i = 0; i < 64; i++) {
    const result = await app.websocketPublish('limits', chunk)
    t.equal(result.delivered, 1, 'maxBufferedAmount: 0 on the route lifts the plugin limit')
  }
  const bad = Fastify()
  await bad.register(fastifyWsconn)
  t.throws(() => bad.get('/x', { websocket: { slowConsumerPolicy: 'wait' as 'drop' } }, async () => {}), /slowConsumerPolicy must be 'close' or 'drop'/)
  t.throws(() => bad.get('/y', { websocket: { maxBufferedAmount: -5 } }, async () => {}), /maxBufferedAmount must be an integer >= 0, got -5/)
  await t.rejects(async () => {
    const app = Fastify()
    await app.register(fastifyWsconn, { slowConsumerPolicy: 'x' as 'drop' })
  }, /slowConsumerPolicy/)
  await bad.close()
})

t.test('app.close() closes subscribers with 1001 and leaves no topic behind', async (t) => {
  const { app, url } = await chatApp(t)
  const client = await openRecording(`${url}/rooms/z`)
  await client.waitFor(1)
  const closed = closeOf(client.ws)
  await app.close()
  t.equal((await closed).code, 1001)
  t.same(app.websocketHub.topics, [])
  t.same(await app.websocketPublish('room:z', 'late'), { delivered: 0, dropped: 0, closed: 0 }, 'publishing after close is harmless')
})

async function waitUntil (check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5))
}

t.test('the pubsub option: checked at registration, a custom bus gets the delivery function, an unreachable Redis fails registration', async (t) => {
  for (const pubsub of [{}, { redis: {}, bus: () => {} }, { kafka: {} }, null, { bus: {} }]) {
    await t.rejects(async () => {
      const app = Fastify()
      await app.register(fastifyWsconn, { pubsub: pubsub as never })
    }, /option pubsub/, JSON.stringify(pubsub))
  }
  const calls: string[] = []
  let deliver: ((topic: string, message: { binary: boolean, data: Buffer }) => void) | undefined
  const app = Fastify()
  await app.register(fastifyWsconn, {
    pubsub: {
      bus: (deliverHere) => {
        deliver = deliverHere
        return {
          ready: async () => { calls.push('ready') },
          subscribe: (topic) => { calls.push(`subscribe ${topic}`) },
          unsubscribe: (topic) => { calls.push(`unsubscribe ${topic}`) },
          publish: async (topic) => { calls.push(`publish ${topic}`) },
          close: async () => { calls.push('close') }
        }
      }
    }
  })
  app.get('/t', { websocket: true }, async (conn) => {
    conn.subscribe('t')
    conn.send('subscribed')
  })
  const port = await listen(app)
  const client = await openRecording(`ws://127.0.0.1:${port}/t`)
  await client.waitFor(1)
  deliver!('t', { binary: false, data: Buffer.from('from another process') })
  await client.waitFor(2)
  t.equal(client.texts()[1], 'from another process')
  await app.websocketPublish('t', 'x')
  await app.close()
  t.same(calls, ['ready', 'subscribe t', 'publish t', 'unsubscribe t', 'close'])

  const unreachable = Fastify()
  // Port 1 on loopback refuses connections at once.
  const error = await unreachable.register(fastifyWsconn, { pubsub: { redis: { url: 'redis://user:secret@127.0.0.1:1', connectTimeout: 500 } } })
    .then(() => undefined, (err: unknown) => err as Error)
  t.match(error?.message, /127\.0\.0\.1:1/, 'registration fails naming the Redis')
  t.notMatch(error?.message, /secret/, '... without its password')
})
