// RedisBus against a real redis-server: what crosses between buses (standing in for processes),
// in which order, on which channels, and what Redis itself reports through redis-cli.
import t from 'tap'
import { createClient } from 'redis'
import { execFileSync } from 'node:child_process'
import { RedisBus } from '../lib/pubsub/redis-bus.js'
import { RedisServer, skipWithoutRedis } from './helpers/redis-server.js'
import { channelsInRedis, recordingDelivery, recordingLogger, startBus, waitFor, waitForChannels } from './helpers/pubsub-bus.js'

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

/** How many subscribers Redis counts on `channel`. */
async function subscribers (redis: RedisServer, channel: string, sharded: boolean): Promise<number> {
  const [, count] = await redis.cli('PUBSUB', sharded ? 'SHARDNUMSUB' : 'NUMSUB', channel)
  return Number(count)
}

/** How many times Redis ran `command` since it started (INFO commandstats). */
async function calls (redis: RedisServer, command: string): Promise<number> {
  const stats = (await redis.cli('INFO', 'commandstats')).join('\n')
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
}

t.test('RedisBus on a real Redis', { skip: skipWithoutRedis }, async (t) => {
  const redis = await RedisServer.start(t)

  for (const sharded of [false, 'auto', true] as const) {
    t.test(`a publish reaches the other bus once, byte for byte, and never its publisher (sharded: ${sharded})`, async (t) => {
      const a = recordingDelivery()
      const b = recordingDelivery()
      const busA = await startBus(t, { url: redis.url, sharded }, a.deliver)
      const busB = await startBus(t, { url: redis.url, sharded }, b.deliver)
      t.equal(busA.sharded, sharded !== false, 'Redis 7 has sharded pub/sub')
      const shardedInUse = busA.sharded
      busA.subscribe('room')
      busB.subscribe('room')
      await waitFor(async () => await subscribers(redis, 'wsconn:room', shardedInUse) === 2, 'both buses subscribed')

      await busA.publish('room', { binary: true, data: allBytes })
      await busA.publish('room', { binary: false, data: Buffer.from('héllo ✓') })
      await busB.publish('room', { binary: false, data: Buffer.from('from b') })
      await b.count(2)
      await a.count(1)
      t.same(b.received, [
        { topic: 'room', message: { binary: true, data: allBytes } },
        { topic: 'room', message: { binary: false, data: Buffer.from('héllo ✓') } }
      ])
      t.same(a.received, [{ topic: 'room', message: { binary: false, data: Buffer.from('from b') } }], 'a bus never receives its own publishes')
      busB.unsubscribe('room')
      await waitFor(async () => await subscribers(redis, 'wsconn:room', shardedInUse) === 1, 'b unsubscribed')
    })
  }

  t.test('5,000 messages from one publisher on one topic arrive in publish order', async (t) => {
    const received = recordingDelivery()
    const publisher = await startBus(t, { url: redis.url })
    const subscriber = await startBus(t, { url: redis.url }, received.deliver)
    subscriber.subscribe('order')
    await waitFor(async () => await subscribers(redis, 'wsconn:order', true) === 1, 'subscribed')
    const sends: Array<Promise<void>> = []
    for (let i = 0; i < 5000; i++) sends.push(publisher.publish('order', { binary: false, data: Buffer.from(String(i)) }))
    await Promise.all(sends)
    await received.count(5000)
    const order = received.received.map(({ message }) => Number(message.data.toString()))
    t.same(order, Array.from({ length: 5000 }, (_, i) => i))
  })

  t.test('only wanted topics are subscribed in Redis, one SUBSCRIBE each, whatever the interleaving', async (t) => {
    const received = recordingDelivery()
    const bus = await startBus(t, { url: redis.url, sharded: false, channelPrefix: 'app1:' }, received.deliver)
    const before = await calls(redis, 'subscribe')
    bus.subscribe('a')
    bus.subscribe('a')
    bus.subscribe('b')
    bus.unsubscribe('b')
    bus.subscribe('b')
    bus.subscribe('c')
    bus.unsubscribe('c')
    bus.subscribe('c')
    bus.unsubscribe('c')
    bus.unsubscribe('never-subscribed')
    await waitForChannels(redis, false, ['app1:a', 'app1:b'])
    // Give any stray command time to show: a settled topic sends nothing more.
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.same(await channelsInRedis(redis, false), ['app1:a', 'app1:b'])
    t.equal(await calls(redis, 'subscribe') - before, 3, "subscribe twice is one SUBSCRIBE; c's first SUBSCRIBE finished before its unsubscribe was sent")

    bus.unsubscribe('a')
    await waitForChannels(redis, false, ['app1:b'])
    await redis.cli('PUBLISH', 'app1:a', 'ignored: not subscribed any more')
    const publisher = await startBus(t, { url: redis.url, sharded: false, channelPrefix: 'app1:' })
    await publisher.publish('a', { binary: false, data: Buffer.from('late') })
    await publisher.publish('b', { binary: false, data: Buffer.from('on b') })
    await received.count(1)
    t.same(received.received.map(({ topic }) => topic), ['b'])
  })

  t.test('a message already on its way when its topic is unsubscribed is dropped', async (t) => {
    const received = recordingDelivery()
    const log = recordingLogger()
    const bus = await startBus(t, { url: redis.url, sharded: false }, received.deliver, log)
    bus.subscribe('gone')
    await waitForChannels(redis, false, ['wsconn:gone'])
    // redis-cli publishes while this process is blocked, so the message waits unread in the
    // subscriber's socket while the topic is unsubscribed.
    execFileSync('/usr/bin/redis-cli', ['-p', String(redis.port), 'PUBLISH', 'wsconn:gone', 'not even an envelope'])
    bus.unsubscribe('gone')
    await waitForChannels(redis, false, [])
    t.same(received.received, [])
    t.same(log.entries, [], 'not delivered, not even looked at')
  })

  t.test('a foreign message on a subscribed channel is ignored and logged once per topic', async (t) => {
    const received = recordingDelivery()
    const log = recordingLogger()
    const bus = await startBus(t, { url: redis.url, sharded: false }, received.deliver, log)
    bus.subscribe('x')
    bus.subscribe('y')
    await waitForChannels(redis, false, ['wsconn:x', 'wsconn:y'])
    await redis.cli('PUBLISH', 'wsconn:x', 'not an envelope')
    await redis.cli('PUBLISH', 'wsconn:x', 'still not one')
    await redis.cli('PUBLISH', 'wsconn:y', 'nor this')
    const publisher = await startBus(t, { url: redis.url, sharded: false })
    await publisher.publish('x', { binary: false, data: Buffer.from('valid') })
    await received.count(1)
    t.same(received.received, [{ topic: 'x', message: { binary: false, data: Buffer.from('valid') } }])
    const warnings = log.entries.filter(({ msg }) => msg.includes('ignored a message it did not publish'))
    t.same(warnings.map(({ level, obj }) => [level, obj.topic, obj.reason]), [
      ['warn', 'x', 'unknown format version 110'],
      ['warn', 'y', 'shorter than the 10-byte header']
    ])
  })

  t.test('a delivery that throws is logged and does not stop the next ones', async (t) => {
    const log = recordingLogger()
    const topics: string[] = []
    const bus = await startBus(t, { url: redis.url }, (topic) => {
      topics.push(topic)
      if (topics.length === 1) throw new Error('app bug')
    }, log)
    bus.subscribe('t')
    await waitFor(async () => await subscribers(redis, 'wsconn:t', true) === 1, 'subscribed')
    const publisher = await startBus(t, { url: redis.url })
    await publisher.publish('t', { binary: false, data: Buffer.from('1') })
    await publisher.publish('t', { binary: false, data: Buffer.from('2') })
    await waitFor(() => topics.length === 2, 'two deliveries')
    t.match(log.entries, [{ level: 'error', msg: 'websocket: pubsub delivery threw', obj: { topic: 't', err: { message: 'app bug' } } }])
  })

  t.test("an app's client is duplicated, never used for pub/sub and never closed", async (t) => {
    const app = createClient({ url: redis.url })
    t.teardown(() => app.isOpen ? app.close() : undefined)
    await app.connect()
    const received = recordingDelivery()
    const bus = new RedisBus({ client: app }, received.deliver, recordingLogger())
    await bus.ready()
    bus.subscribe('shared')
    await waitFor(async () => await subscribers(redis, 'wsconn:shared', true) === 1, 'subscribed')
    t.equal(app.isPubSubActive, false, "the app's client does not subscribe")
    const publisher = await startBus(t, { url: redis.url })
    await publisher.publish('shared', { binary: true, data: Buffer.from([0, 255]) })
    await received.count(1)
    await bus.close()
    t.equal(app.isReady, true, "close() leaves the app's client open")
    t.equal(await app.ping(), 'PONG')
    t.equal(await subscribers(redis, 'wsconn:shared', true), 0)
  })

  t.test('sharded: auto falls back to plain channels where SSUBSCRIBE/SPUBLISH or COMMAND are missing; sharded: true refuses to start', async (t) => {
    for (const renamed of ['SPUBLISH', 'COMMAND']) {
      const old = await RedisServer.start(t, ['--rename-command', renamed, ''])
      const bus = await startBus(t, { url: old.url })
      t.equal(bus.sharded, false, `without ${renamed}`)
      bus.subscribe('r')
      await waitForChannels(old, false, ['wsconn:r'])
      const refused = new RedisBus({ url: old.url, sharded: true }, () => {}, recordingLogger())
      await t.rejects(refused.ready(), { message: `websocket: option pubsub.redis.sharded is true but Redis at ${old.url} has no sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7)` })
      await refused.close()
      await old.kill()
    }
  })

  t.test('a channel the Redis user may not use is reported, and other topics still work', async (t) => {
    await redis.cli('ACL', 'SETUSER', 'limited', 'on', '>pw', '~*', '+@all', 'resetchannels', '&wsconn:ok*')
    const log = recordingLogger()
    const bus = await startBus(t, { url: `redis://limited:pw@127.0.0.1:${redis.port}`, sharded: false }, () => {}, log)
    bus.subscribe('secret')
    bus.subscribe('ok1')
    await waitFor(() => log.entries.length > 0, 'a log entry')
    await waitForChannels(redis, false, ['wsconn:ok1'])
    t.match(log.entries, [{ level: 'warn', obj: { topic: 'secret', redis: `redis://127.0.0.1:${redis.port}` }, msg: /could not change its Redis subscription/ }])
    t.notMatch(JSON.stringify(log.entries), /pw@/, 'the log names no password')
  })

  t.test('close() unsubscribes, closes both connections and leaves no handle or timer', async (t) => {
    // Sockets and timers only (redis-cli runs as child processes, which come and go). Earlier
    // subtests closed all their connections, so once their sockets are released there are none.
    const resources = (): string[] => process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap' || name === 'Timeout').sort()
    await waitFor(() => !resources().includes('TCPSocketWrap'), 'earlier sockets released')
    const before = resources()
    const bus = new RedisBus({ url: redis.url, sharded: false, channelPrefix: 'closing:' }, () => {}, recordingLogger())
    await bus.ready()
    bus.subscribe('one')
    bus.subscribe('two')
    await waitForChannels(redis, false, ['closing:one', 'closing:two'])
    await bus.publish('one', { binary: false, data: Buffer.from('x') })
    const clientsBefore = (await redis.cli('CLIENT', 'LIST')).length
    await Promise.all([bus.close(), bus.close()])
    t.same(await channelsInRedis(redis, false), [])
    t.equal((await redis.cli('CLIENT', 'LIST')).length, clientsBefore - 2, 'both connections closed')
    // Timers of earlier subtests may expire meanwhile: nothing may be left beyond what was there before.
    const count = (list: string[], name: string): number => list.filter((entry) => entry === name).length
    const noneAdded = (): boolean => ['TCPSocketWrap', 'Timeout'].every((name) => count(resources(), name) <= count(before, name))
    await waitFor(noneAdded, `no socket or timer left (have ${JSON.stringify(resources())}, had ${JSON.stringify(before)})`)
    t.pass('no socket or timer left')
    await t.rejects(bus.publish('one', { binary: false, data: Buffer.from('x') }), { message: 'websocket: pubsub is closed' })
    await t.rejects(bus.ready(), { message: 'websocket: pubsub is closed' }, 'ready() after close()')
    bus.subscribe('three')
    t.same(await channelsInRedis(redis, false), [], 'subscribe() after close() does nothing')
  })
})
