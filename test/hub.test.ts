// Topics in one process (Hub) over real TCP with `ws` clients: who gets what, in order and with its
// type; subscriptions end with the connection; bad topics and data are refused; a bus is told about
// a topic only on its first subscriber and last leaver, and its failures and deliveries are handled.
import t from 'tap'
import { Hub } from '../lib/hub/hub.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { PingMessage, TextMessage } from '../lib/protocol/constants.js'
import { PublishError, UsageError } from '../lib/protocol/errors.js'
import type { BusMessage, TopicBus } from '../lib/pubsub/bus.js'
import { Upgrader } from '../lib/upgrader.js'
import { UpgraderServer } from './helpers/topic-clients.js'

t.test('a publish reaches exactly the subscribers of its topic, in order, text as text and bytes as binary', async (t) => {
  const hub = new Hub()
  const server = await UpgraderServer.start(t, { hub })
  const a = await server.connect()
  const b = await server.connect()
  const other = await server.connect()
  t.equal(a.conn.subscribe('news'), true)
  t.equal(a.conn.subscribe('news'), false, 'a second subscribe is a no-op')
  t.equal(b.conn.subscribe('news'), true)
  t.equal(other.conn.subscribe('sport'), true)
  t.same([a.conn.isSubscribed('news'), a.conn.isSubscribed('sport')], [true, false])
  t.same(a.conn.topics, ['news'])
  t.equal(hub.subscriberCount('news'), 2)
  t.same(hub.topics.sort(), ['news', 'sport'])

  const results = [
    await hub.publish('news', 'one'),
    await hub.publish('news', Buffer.from([0, 255, 1])),
    await hub.publish('news', new Uint16Array([0x0102, 0x0304])),
    await hub.publish('news', new PreparedMessage(TextMessage, 'prepared')),
    await hub.publishJSON('news', { n: 5 }),
    await a.conn.publish('news', 'not to a', { except: a.conn })
  ]
  t.same(results.map((r) => r.delivered), [2, 2, 2, 2, 2, 1])
  await Promise.all([a.client.waitFor(5), b.client.waitFor(6)])
  const expected = [
    { binary: false, data: Buffer.from('one') },
    { binary: true, data: Buffer.from([0, 255, 1]) },
    { binary: true, data: Buffer.from(new Uint16Array([0x0102, 0x0304]).buffer) },
    { binary: false, data: Buffer.from('prepared') },
    { binary: false, data: Buffer.from('{"n":5}') }
  ]
  t.same(a.client.received, expected, 'a got the five in order, not the one that excluded it')
  t.same(b.client.received, [...expected, { binary: false, data: Buffer.from('not to a') }])
  t.same(other.client.received, [], 'a subscriber of another topic got nothing')
  t.same(await hub.publish('nobody', 'x'), { delivered: 0, dropped: 0, closed: 0 })

  t.equal(a.conn.unsubscribe('news'), true)
  t.equal(a.conn.unsubscribe('news'), false)
  t.same([a.conn.isSubscribed('news'), a.conn.topics], [false, []])
  await hub.publish('news', 'after')
  await b.client.waitFor(7)
  t.equal(a.client.received.length, 5, 'an unsubscribed connection gets no more')
})

t.test('a closed connection leaves all its topics by itself', async (t) => {
  const hub = new Hub()
  const server = await UpgraderServer.start(t, { hub })
  const { client, conn } = await server.connect()
  conn.subscribe('a')
  conn.subscribe('b')
  client.ws.close()
  await conn.closed
  t.same([hub.subscriberCount('a'), hub.subscriberCount('b'), hub.topics], [0, 0, []])
  t.same(conn.topics, [])
  const late = await server.connect()
  late.conn.terminate()
  await late.conn.closed
  t.equal(late.conn.subscribe('c'), true, 'subscribing after the close is allowed')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(hub.subscriberCount('c'), 0, '... and undone at once')
  t.same(await hub.publish('a', 'x'), { delivered: 0, dropped: 0, closed: 0 })
})

t.test('bad topics, bad data and connections without a hub are refused with a UsageError', async (t) => {
  const hub = new Hub()
  const server = await UpgraderServer.start(t, { hub })
  const { conn } = await server.connect()
  t.throws(() => conn.subscribe(''), UsageError)
  t.throws(() => conn.subscribe('x'.repeat(1025)), { message: /at most 1024 characters, got 1025/ })
  t.throws(() => conn.subscribe(7 as unknown as string), { message: /got number/ })
  await t.rejects(hub.publish('', 'x'), UsageError)
  await t.rejects(hub.publish('t', 42 as unknown as string), UsageError)
  await t.rejects(hub.publish('t', new PreparedMessage(PingMessage, 'p')), { message: /only text and binary/ })
  await t.rejects(hub.publishJSON('t', undefined), { message: /does not serialise/ })
  await t.rejects(hub.publishJSON('t', 1n), TypeError, 'a BigInt does not serialise')
  t.throws(() => new Upgrader({ hub: {} as Hub }), /option hub must be a Hub/)

  const plain = await UpgraderServer.start(t)
  const { conn: lonely } = await plain.connect()
  t.throws(() => lonely.subscribe('x'), { message: /no hub/ })
  t.throws(() => lonely.unsubscribe('x'), { message: /no hub/ })
  t.equal(lonely.isSubscribed('x'), false)
  t.same(lonely.topics, [])
  await t.rejects(lonely.publish('x', 'y'), { message: /no hub/ })
  await t.rejects(lonely.publishJSON('x', 1), { message: /no hub/ })
})

/** A bus that records what the hub asks of it; `failing` makes publishes reject. */
class RecordingBus implements TopicBus {
  readonly calls: string[] = []
  failing = false
  async ready (): Promise<void> {}
  subscribe (topic: string): void { this.calls.push(`subscribe ${topic}`) }
  unsubscribe (topic: string): void { this.calls.push(`unsubscribe ${topic}`) }
  async publish (topic: string, message: BusMessage): Promise<void> {
    this.calls.push(`publish ${topic} ${message.binary ? 'binary' : 'text'} ${message.data.toString('hex')}`)
    if (this.failing) throw new Error('redis is down')
  }

  async close (): Promise<void> { this.calls.push('close') }
}

t.test('with a bus: subscribed on the first subscriber, unsubscribed on the last, publishes handed over', async (t) => {
  const bus = new RecordingBus()
  const warnings: string[] = []
  const hub = new Hub({ bus, log: { info () {}, error () {}, warn (_obj, msg) { warnings.push(msg) } } })
  const server = await UpgraderServer.start(t, { hub })
  const a = await server.connect()
  const b = await server.connect()
  a.conn.subscribe('room')
  b.conn.subscribe('room')
  t.same(bus.calls, ['subscribe room'], 'one bus subscription for two local subscribers')
  await hub.publish('room', Buffer.from([1, 2]))
  t.equal(bus.calls[1], 'publish room binary 0102')

  hub.deliverFromBus('room', { binary: false, data: Buffer.from('from afar') })
  hub.deliverFromBus('room', { binary: true, data: Buffer.from([9]) })
  hub.deliverFromBus('room', { binary: false, data: Buffer.from([0xc3, 0x28]) })
  hub.deliverFromBus('elsewhere', { binary: false, data: Buffer.from('nobody here') })
  await a.client.waitFor(3)
  t.same(a.client.received.slice(1), [{ binary: false, data: Buffer.from('from afar') }, { binary: true, data: Buffer.from([9]) }])
  t.same(warnings, ['websocket: dropped a text message from the bus that is not valid UTF-8'])

  bus.failing = true
  const failed = await hub.publish('room', 'lost elsewhere').catch((error: unknown) => error)
  t.ok(failed instanceof PublishError, 'a bus failure rejects with a PublishError')
  t.same((failed as PublishError).result, { delivered: 2, dropped: 0, closed: 0 }, '... after local delivery')
  t.match((failed as PublishError).message, /reached 2 local subscriber\(s\) but not the other processes: redis is down/)
  t.equal((failed as PublishError).code, 'ERR_WS_PUBLISH')
  t.match(new PublishError('t', { delivered: 0, dropped: 0, closed: 0 }, 'gone').message, /not the other processes: gone$/, 'a cause that is not an Error is quoted')
  hub.publish('room', 'ignored promise') // must not become an unhandled rejection
  await b.client.waitFor(5)

  a.conn.unsubscribe('room')
  t.notOk(bus.calls.includes('unsubscribe room'), 'still one subscriber')
  b.client.ws.close()
  await b.conn.closed
  t.equal(bus.calls.at(-1), 'unsubscribe room', 'the last leaver unsubscribes the bus')
  await hub.close()
  t.equal(bus.calls.at(-1), 'close')
  bus.failing = false
  a.conn.subscribe('room')
  await hub.publish('room', 'local only')
  t.notOk(bus.calls.some((call) => call.includes(Buffer.from('local only').toString('hex'))), 'a closed hub no longer uses the bus')
  await a.client.waitFor(6)
  t.equal(a.client.texts().at(-1), 'local only')
})

t.test('a compressed publish is compressed once for every subscriber with the same parameters', async (t) => {
  const hub = new Hub()
  const server = await UpgraderServer.start(t, { hub, compression: true })
  const clients = []
  for (let i = 0; i < 5; i++) {
    const pair = await server.connect({ perMessageDeflate: true })
    t.equal(pair.conn.compressionNegotiated, true)
    pair.conn.subscribe('t')
    clients.push(pair.client)
  }
  const text = 'compressible '.repeat(1000)
  const prepared = new PreparedMessage(TextMessage, text)
  let compressions = 0
  const original = prepared.compressedFrameFor.bind(prepared)
  // Each connection asks the message for its frame; the message compresses once per level and window.
  const seen = new Set<Promise<Buffer>>()
  prepared.compressedFrameFor = (isServer, level, windowBits) => {
    const frame = original(isServer, level, windowBits)
    if (!seen.has(frame)) compressions++
    seen.add(frame)
    return frame
  }
  await hub.publish('t', prepared)
  await Promise.all(clients.map(async (client) => await client.waitFor(1)))
  t.equal(compressions, 1, 'one compressed frame shared by five connections')
  for (const client of clients) t.equal(client.received[0]!.data.toString(), text)
  await hub.publish('t', Buffer.alloc(10, 1))
  await Promise.all(clients.map(async (client) => await client.waitFor(2)))
  t.same(clients.map((client) => client.received[1]!.binary), [true, true, true, true, true])
})
