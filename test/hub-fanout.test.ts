// A topic with more subscribers than the hub's fanoutSlice is served over several turns of the
// event loop. Over real TCP with `ws` clients: every subscriber still gets every publish exactly
// once and in order, publishes made meanwhile leave in the same write as the ones before them,
// a connection's own writes, its close and its other topics' publishes keep their order with the
// publishes, and results count what happened.
import t, { type Test } from 'tap'
import type { Socket } from 'node:net'
import { FANOUT_SLICE, Hub } from '../lib/hub/hub.js'
import type { Conn } from '../lib/conn/conn.js'
import { UpgraderServer, type RecordingClient } from './helpers/topic-clients.js'

interface Subscriber { client: RecordingClient, conn: Conn }

async function subscribers (t: Test, hub: Hub, count: number, topic = 'big'): Promise<{ server: UpgraderServer, subs: Subscriber[] }> {
  const server = await UpgraderServer.start(t, { hub })
  const subs: Subscriber[] = []
  for (let i = 0; i < count; i++) {
    const sub = await server.connect()
    sub.conn.subscribe(topic)
    subs.push(sub)
  }
  return { server, subs }
}

/** Counts, per socket write to the kernel, how many buffers it carried. */
function recordWrites (conn: Conn): number[] {
  const socket = conn.socket as Socket & { _writev: (chunks: unknown[], cb: () => void) => void, _write: (chunk: unknown, encoding: string, cb: () => void) => void }
  const writes: number[] = []
  const writev = socket._writev
  const write = socket._write
  socket._writev = function (chunks, cb) { writes.push(chunks.length); writev.call(this, chunks, cb) }
  socket._write = function (chunk, encoding, cb) { writes.push(1); write.call(this, chunk, encoding, cb) }
  return writes
}

const texts = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `m${from + i}`)

t.test('the default slice is 1024 and a bad one is refused', async (t) => {
  t.equal(FANOUT_SLICE, 1024)
  t.throws(() => new Hub({ fanoutSlice: 0 }), /option fanoutSlice must be an integer >= 1, got 0/)
  t.throws(() => new Hub({ fanoutSlice: 1.5 }), RangeError)
})

t.test('publishes made while a topic is served share its writes, and every subscriber gets all of them in order', async (t) => {
  const hub = new Hub({ fanoutSlice: 2 })
  const { subs } = await subscribers(t, hub, 7)
  const writes = subs.map((sub) => recordWrites(sub.conn))
  const published = texts(0, 20).map((text) => hub.publish('big', text))
  // The first two subscribers were offered the first publish at once (their sockets hold it, corked
  // until this tick ends); the others are not yet.
  t.same(subs.map((sub) => sub.conn.bufferedAmount > 0), [true, true, false, false, false, false, false], 'one slice at once')
  const results = await Promise.all(published)
  t.same(results.map((r) => r.delivered), Array(20).fill(7), 'each publish reached all seven')
  await Promise.all(subs.map(async (sub) => await sub.client.waitFor(20)))
  for (const [i, sub] of subs.entries()) t.same(sub.client.texts(), texts(0, 20), `subscriber ${i}: all twenty, in order`)
  // Subscribers reached after the twenty were published got them in one write (header and
  // payload are merged for small frames, so one buffer per message).
  t.same(writes.slice(2).map((w) => w.length), [1, 1, 1, 1, 1], 'one write each for the subscribers reached later')
  t.same(writes.slice(2).map((w) => w[0]), [20, 20, 20, 20, 20], '... carrying all twenty frames')
  t.same(writes.slice(0, 2).map((w) => w.reduce((a, b) => a + b, 0)), [20, 20], 'the first two got the rest on a second pass')
})

t.test('a connection\'s own writes, its close and its other topics keep their order with publishes still on their way', async (t) => {
  const hub = new Hub({ fanoutSlice: 1 })
  const { server, subs } = await subscribers(t, hub, 4)
  const [first, , third, last] = subs as [Subscriber, Subscriber, Subscriber, Subscriber]
  // One subscriber, within the slice: served at once, after what 'big' still owes it.
  last.conn.subscribe('small')
  const outsider = await server.connect()

  const big = hub.publish('big', 'published')
  // `last` has not been reached yet: all that follows must come after the publish.
  t.equal(last.conn.bufferedAmount, 0, 'the last subscriber is not reached at once')
  await last.conn.writeMessage(1, 'written')
  last.conn.send('sent')
  const smallResult = await hub.publish('small', 'other topic')
  t.same(smallResult, { delivered: 1, dropped: 0, closed: 0 })
  first.conn.send('first only')
  outsider.conn.send('owed nothing')
  await third.conn.close(1000, 'bye')
  t.same(await big, { delivered: 4, dropped: 0, closed: 0 })
  await last.client.waitFor(4)
  t.same(last.client.texts(), ['published', 'written', 'sent', 'other topic'])
  await first.client.waitFor(2)
  t.same(first.client.texts(), ['published', 'first only'])
  t.same(third.client.texts(), ['published'], 'the publish came before the close frame')
  await outsider.client.waitFor(1)
  t.same(outsider.client.texts(), ['owed nothing'], 'a connection in no topic writes as usual')
})

t.test('a connection owed publishes by two topics gets them in the order they were made', async (t) => {
  const hub = new Hub({ fanoutSlice: 1 })
  const server = await UpgraderServer.start(t, { hub })
  const x = await server.connect()
  const y = await server.connect()
  x.conn.subscribe('one')
  y.conn.subscribe('one')
  y.conn.subscribe('two')
  x.conn.subscribe('two')
  // x is first in 'one' (reached at once) and last in 'two' (not reached at once).
  const published = [hub.publish('one', 'a'), hub.publish('two', 'b'), hub.publish('one', 'c')]
  x.conn.send('d')
  await Promise.all(published)
  await x.client.waitFor(4)
  t.same(x.client.texts(), ['a', 'b', 'c', 'd'])
  await y.client.waitFor(3)
  t.same(y.client.texts(), ['a', 'b', 'c'])
})

t.test('subscribing while a publish is on its way skips it; unsubscribing still gets it', async (t) => {
  const hub = new Hub({ fanoutSlice: 1 })
  const { server, subs } = await subscribers(t, hub, 3)
  const late = await server.connect()
  const leaving = subs[2]!
  const first = hub.publish('big', 'before')
  late.conn.subscribe('big')
  t.equal(leaving.conn.unsubscribe('big'), true)
  const second = hub.publish('big', 'after')
  t.same((await first).delivered, 3, 'the first reached the three subscribed when it was made')
  t.same((await second).delivered, 3, 'the second reached the two left and the newcomer')
  await late.client.waitFor(1)
  await leaving.client.waitFor(1)
  await subs[0]!.client.waitFor(2)
  t.same(late.client.texts(), ['after'])
  t.same(leaving.client.texts(), ['before'])
  t.same(subs[0]!.client.texts(), ['before', 'after'])
})

t.test('except and closed subscribers are counted; a topic whose last subscriber leaves settles', async (t) => {
  const hub = new Hub({ fanoutSlice: 1 })
  const { subs } = await subscribers(t, hub, 3)
  const [a, b, c] = subs as [Subscriber, Subscriber, Subscriber]
  const result = hub.publish('big', 'x', { except: a.conn })
  c.conn.terminate()
  await c.conn.closed
  t.same(await result, { delivered: 1, dropped: 0, closed: 0 }, 'b got it; a was left out; c was gone when reached')
  await b.client.waitFor(1)

  const pending = hub.publish('big', 'y')
  a.conn.terminate()
  b.conn.terminate()
  await Promise.all([a.conn.closed, b.conn.closed])
  t.same(await pending, { delivered: 1, dropped: 0, closed: 0 }, 'the publish settles once nobody is left to reach')
  t.equal(hub.subscriberCount('big'), 0)
})

t.test('the slow-consumer limit applies to each publish of a shared write, and results count the drops', async (t) => {
  const hub = new Hub({ fanoutSlice: 1 })
  const server = await UpgraderServer.start(t, { hub, maxBufferedAmount: 1, slowConsumerPolicy: 'drop' })
  const subs: Subscriber[] = []
  for (let i = 0; i < 2; i++) {
    const sub = await server.connect()
    sub.conn.subscribe('big')
    subs.push(sub)
  }
  const results = await Promise.all(['m0', 'm1', 'm2'].map((text) => hub.publish('big', text)))
  // The second subscriber is reached with all three at once: only the first fits an empty buffer.
  t.same(results[0], { delivered: 2, dropped: 0, closed: 0 })
  t.same(results.map((r) => r.delivered + r.dropped), [2, 2, 2], 'each publish was offered to both')
  t.equal(subs[1]!.conn.droppedMessages, 2, 'the subscriber reached last dropped the two behind the first')
  await subs[1]!.client.waitFor(1)
  t.same(subs[1]!.client.texts(), ['m0'])
})

t.test('a message from the bus is spread the same way, and a burst beyond the pending limit is finished at once', async (t) => {
  const hub = new Hub({ fanoutSlice: 1 })
  const { subs } = await subscribers(t, hub, 2)
  hub.deliverFromBus('big', { binary: true, data: Buffer.from([1, 2, 3]) })
  const burst = texts(0, 1100).map((text) => hub.publish('big', text))
  const results = await Promise.all(burst)
  t.ok(results.every((r) => r.delivered === 2), 'all 1100 reached both')
  for (const sub of subs) {
    await sub.client.waitFor(1101)
    t.same(sub.client.received[0], { binary: true, data: Buffer.from([1, 2, 3]) })
    t.same(sub.client.texts().slice(1), texts(0, 1100))
  }
})
