// RedisBus when Redis is not there, goes away, comes back, stalls, or drops a subscriber that
// reads too slowly: all with a real redis-server, killed and restarted on the same port.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { RedisBus, MAX_PENDING_PUBLISH_BYTES } from '../lib/pubsub/redis-bus.js'
import { RedisServer, skipWithoutRedis } from './helpers/redis-server.js'
import { recordingDelivery, recordingLogger, startBus, waitFor, type LogEntry } from './helpers/pubsub-bus.js'

async function subscribers (redis: RedisServer, channel: string): Promise<number> {
  const [, count] = await redis.cli('PUBSUB', 'SHARDNUMSUB', channel)
  return Number(count)
}

const text = (s: string): { binary: false, data: Buffer } => ({ binary: false, data: Buffer.from(s) })
const messages = (entries: LogEntry[], level: LogEntry['level']): string[] => entries.filter((entry) => entry.level === level).map(({ msg }) => msg)

t.test('RedisBus when Redis fails', { skip: skipWithoutRedis }, async (t) => {
  t.test('ready() rejects within connectTimeout, naming the URL without its password', async (t) => {
    const redis = await RedisServer.start(t)
    await redis.kill()
    const bus = new RedisBus({ url: `redis://app:s3cret@127.0.0.1:${redis.port}/0`, connectTimeout: 300 }, () => {}, recordingLogger())
    const started = Date.now()
    const error = await bus.ready().then(() => undefined, (err: Error) => err)
    t.match(error, { message: `websocket: pubsub could not connect to Redis at redis://127.0.0.1:${redis.port}/0 within 300 ms: connect ECONNREFUSED 127.0.0.1:${redis.port}` })
    t.notMatch(error?.message, /s3cret/)
    t.ok(Date.now() - started < 3000, 'it does not wait for the 5 s default, nor retry forever')
    t.equal(bus.ready(), bus.ready(), 'ready() is settled once')
    await bus.close()
    await t.rejects(bus.publish('x', text('x')), { message: 'websocket: pubsub is closed' })
  })

  t.test('ready() rejects within connectTimeout when the server accepts but never answers', async (t) => {
    const sockets: Socket[] = []
    const silent = createServer((socket) => { sockets.push(socket.on('data', () => {})) })
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    t.teardown(() => {
      for (const socket of sockets) socket.destroy()
      silent.close()
    })
    const { port } = silent.address() as AddressInfo
    const bus = new RedisBus({ url: `redis://127.0.0.1:${port}`, connectTimeout: 300 }, () => {}, recordingLogger())
    await t.rejects(bus.ready(), { message: `websocket: pubsub could not connect to Redis at redis://127.0.0.1:${port} within 300 ms` })
    await bus.close()
  })

  t.test('Redis killed and restarted: publishes fail fast meanwhile, subscriptions come back by themselves', async (t) => {
    const redis = await RedisServer.start(t)
    const logA = recordingLogger()
    const logB = recordingLogger()
    const received = recordingDelivery()
    const busA = await startBus(t, { url: redis.url }, () => {}, logA)
    const busB = await startBus(t, { url: redis.url }, received.deliver, logB)
    busB.subscribe('room')
    await waitFor(async () => await subscribers(redis, 'wsconn:room') === 1, 'subscribed')
    await busA.publish('room', text('before'))
    await received.count(1)

    await redis.kill()
    await waitFor(() => messages(logA.entries, 'warn').length === 2 && messages(logB.entries, 'warn').length === 2, 'both buses to see both connections lost')
    t.match(logA.entries, [
      { level: 'warn', obj: { redis: redis.url, connection: /publisher|subscriber/ }, msg: /websocket: pubsub lost its Redis (publisher connection; publishes fail|subscriber connection; messages from other processes are not received) until it is back/ },
      { level: 'warn' }
    ])
    await t.rejects(busA.publish('room', text('lost')), { message: new RegExp(`^websocket: pubsub cannot publish: Redis at ${redis.url} is unavailable`) })
    busB.subscribe('late')
    busB.unsubscribe('room')
    busB.subscribe('room')

    await redis.restart()
    await waitFor(() => messages(logA.entries, 'info').length === 2 && messages(logB.entries, 'info').length === 2, 'both buses restored').catch((err) => { console.error(JSON.stringify([logA.entries, logB.entries], null, 1)); throw err })
    t.match(messages(logB.entries, 'info'), [/restored; messages published while it was down were not delivered \(at-most-once\)/, /at-most-once/])
    t.same(messages(logB.entries, 'warn').length, 2, 'a Redis outage is not mistaken for an output-buffer disconnect')
    await waitFor(async () => await subscribers(redis, 'wsconn:late') === 1 && await subscribers(redis, 'wsconn:room') === 1, 'both topics subscribed on the new server')
    await busA.publish('room', text('after'))
    await busA.publish('late', text('subscribed while down'))
    await received.count(3)
    t.same(received.received.map(({ topic, message }) => [topic, message.data.toString()]), [
      ['room', 'before'], ['room', 'after'], ['late', 'subscribed while down']
    ])
  })

  t.test("a subscriber over Redis's pubsub output-buffer limit is dropped, and that is logged and repaired", async (t) => {
    const redis = await RedisServer.start(t)
    await redis.cli('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 256kb 128kb 60')
    const log = recordingLogger()
    const received = recordingDelivery()
    const slow = await startBus(t, { url: redis.url }, received.deliver, log)
    slow.subscribe('flood')
    await waitFor(async () => await subscribers(redis, 'wsconn:flood') === 1, 'subscribed')

    // redis-cli, a child process, publishes 400 messages of 100 KB (more than the loopback
    // socket buffers hold) while this process's event loop is blocked and reads nothing.
    const script = "for i = 1, 400 do redis.call('SPUBLISH', KEYS[1], string.rep('x', 100000)) end"
    execFileSync('/usr/bin/redis-cli', ['-p', String(redis.port), 'EVAL', script, '1', 'wsconn:flood'])
    await waitFor(() => redis.log.includes('scheduled to be closed ASAP for overcoming of output buffer limits'), 'Redis to drop the subscriber')

    await waitFor(() => log.entries.some(({ msg }) => msg.includes('client-output-buffer-limit')), 'the output-buffer warning')
    t.match(log.entries.filter(({ level }) => level === 'warn'), [
      { obj: { connection: 'subscriber' }, msg: /lost its Redis subscriber connection/ },
      { obj: { connection: 'subscriber', redis: redis.url }, msg: /most likely because this process read too slowly and exceeded Redis's client-output-buffer-limit for pubsub; resubscribed, but messages published meanwhile were lost/ }
    ])
    t.same(received.received, [], 'the flood was not ours: no envelope, nothing delivered')
    await waitFor(async () => await subscribers(redis, 'wsconn:flood') === 1, 'resubscribed')
    const publisher = await startBus(t, { url: redis.url })
    await publisher.publish('flood', text('after the flood'))
    await received.count(1)
    t.equal(received.received[0]?.message.data.toString(), 'after the flood')
  })

  t.test('a stalled Redis: publishes time out, close() does not wait for it', async (t) => {
    const redis = await RedisServer.start(t)
    const bus = await startBus(t, { url: redis.url, connectTimeout: 300 })
    bus.subscribe('s')
    await waitFor(async () => await subscribers(redis, 'wsconn:s') === 1, 'subscribed')
    await redis.cli('CLIENT', 'PAUSE', '3000', 'ALL')
    await t.rejects(bus.publish('s', text('stalled')), { message: /^websocket: pubsub cannot publish: Redis at .* is unavailable: .*timed? ?out/i })
    const closing = Date.now()
    await bus.close()
    t.ok(Date.now() - closing < 2500, 'close() gave up waiting for the paused server')
    // redis-cli's command waits for the pause too; by then close() must have ended both sockets itself.
    t.equal((await redis.cli('CLIENT', 'LIST')).length, 1, "when the pause is over, only redis-cli's own connection is left")
  })

  t.test('publishes waiting for Redis are bounded in bytes', async (t) => {
    const redis = await RedisServer.start(t)
    const bus = await startBus(t, { url: redis.url })
    const big = Buffer.alloc(4 * 1024 * 1024)
    const count = MAX_PENDING_PUBLISH_BYTES / big.length + 2
    const results = await Promise.allSettled(Array.from({ length: count }, () => bus.publish('big', { binary: true, data: big })))
    const refused = results.filter((result) => result.status === 'rejected')
    t.equal(results[0]?.status, 'fulfilled')
    t.ok(refused.length >= 2, `${refused.length} refused`)
    t.match(refused[0], { reason: { message: /^websocket: pubsub publish refused: \d+ bytes of publishes already wait for Redis at .* \(limit 67108864\)$/ } })
    await bus.publish('big', { binary: true, data: big })
    t.pass('once they are sent, publishing works again')
  })

  t.test('close() while Redis is down', async (t) => {
    const redis = await RedisServer.start(t)
    const log = recordingLogger()
    const bus = new RedisBus({ url: redis.url }, () => {}, log)
    await bus.ready()
    bus.subscribe('d')
    await redis.kill()
    await waitFor(() => log.entries.length === 2, 'both connections lost')
    await bus.close()
    t.pass('close() resolved without Redis')
  })
})
