// The bytes RedisBus puts on a Redis channel, and the checks on RedisBus's options: no Redis needed.
import t from 'tap'
import { createClient } from 'redis'
import { decodeEnvelope, encodeEnvelope, HEADER_LENGTH, newOrigin } from '../lib/pubsub/envelope.js'
import { resolveRedisBusOptions, type RedisBusOptions } from '../lib/pubsub/redis-options.js'
import { reconnectDelay } from '../lib/pubsub/redis-link.js'

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

t.test('every byte value survives, binary stays binary and text stays text', async (t) => {
  const sender = newOrigin()
  const receiver = newOrigin()
  t.not(sender.toString('hex'), receiver.toString('hex'), 'origins are random')
  const binary = decodeEnvelope(receiver, encodeEnvelope(sender, { binary: true, data: allBytes }))
  t.same(binary, { kind: 'message', message: { binary: true, data: allBytes } })
  const text = Buffer.from('héllo wörld ✓ 🚀')
  t.same(decodeEnvelope(receiver, encodeEnvelope(sender, { binary: false, data: text })), { kind: 'message', message: { binary: false, data: text } })
  t.same(decodeEnvelope(receiver, encodeEnvelope(sender, { binary: false, data: Buffer.alloc(0) })), { kind: 'message', message: { binary: false, data: Buffer.alloc(0) } })
  t.equal(encodeEnvelope(sender, { binary: true, data: allBytes }).length, HEADER_LENGTH + 256)
})

t.test('a bus recognizes its own envelopes', async (t) => {
  const origin = newOrigin()
  t.same(decodeEnvelope(origin, encodeEnvelope(origin, { binary: true, data: allBytes })), { kind: 'own' })
})

t.test('anything else is malformed, with the reason', async (t) => {
  const origin = newOrigin()
  const valid = encodeEnvelope(newOrigin(), { binary: false, data: Buffer.from('hi') })
  const withByte = (index: number, value: number): Buffer => {
    const copy = Buffer.from(valid)
    copy[index] = value
    return copy
  }
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.from('hello'), /shorter than the 10-byte header/],
    [Buffer.alloc(0), /shorter/],
    [withByte(0, 2), /unknown format version 2/],
    [withByte(1, 0x02), /unknown flags 0x2/],
    [withByte(1, 0x81), /unknown flags 0x81/],
    [Buffer.concat([valid, Buffer.from([0xff])]), /not valid UTF-8/]
  ]
  for (const [envelope, reason] of cases) {
    const decoded = decodeEnvelope(origin, envelope)
    t.equal(decoded.kind, 'malformed')
    t.match(decoded.kind === 'malformed' ? decoded.reason : '', reason)
  }
})

t.test('options: defaults, and clear errors for values that cannot work', async (t) => {
  const resolved = resolveRedisBusOptions({ url: 'redis://user:secret@127.0.0.1:7000/2' })
  t.same(resolved, { source: { url: 'redis://user:secret@127.0.0.1:7000/2' }, channelPrefix: 'wsconn:', sharded: 'auto', connectTimeout: 5000, name: 'redis://127.0.0.1:7000/2' })
  t.same(resolveRedisBusOptions({ url: 'rediss://h', channelPrefix: '', sharded: false, connectTimeout: 1 }).channelPrefix, '')

  const bad: Array<[unknown, RegExp, typeof TypeError | typeof RangeError]> = [
    [undefined, /^websocket: option pubsub\.redis must be an object with url, client or cluster$/, TypeError],
    [null, /must be an object/, TypeError],
    [{}, /^websocket: option pubsub\.redis needs url, client or cluster$/, TypeError],
    [{ url: 'redis://a', client: createClient() }, /takes one of url, client or cluster, not several/, TypeError],
    [{ url: 42 }, /pubsub\.redis\.url must be a string, got number/, TypeError],
    [{ url: 'not a url :secret@x' }, /pubsub\.redis\.url is not a URL: "x"/, TypeError],
    [{ url: 'nonsense' }, /pubsub\.redis\.url is not a URL: "nonsense"/, TypeError],
    [{ url: 'http://localhost' }, /must start with redis:\/\/ or rediss:\/\/, got http:\/\//, TypeError],
    [{ url: 'redis://a', channelPrefix: 1 }, /channelPrefix must be a string, got number/, TypeError],
    [{ url: 'redis://a', sharded: 'yes' }, /sharded must be true, false or 'auto', got yes/, TypeError],
    [{ url: 'redis://a', connectTimeout: 0 }, /connectTimeout must be an integer >= 1, got 0/, RangeError],
    [{ url: 'redis://a', connectTimeout: 1.5 }, /connectTimeout must be an integer >= 1, got 1\.5/, RangeError],
    [{ client: {} }, /pubsub\.redis\.client must be a node-redis client/, TypeError],
    [{ client: null }, /client must be a node-redis client/, TypeError]
  ]
  for (const [options, message, type] of bad) {
    t.throws(() => resolveRedisBusOptions(options as RedisBusOptions), { name: type.name, message }, String(message))
  }
})

t.test('an app-given client is named by its address, never its credentials', async (t) => {
  t.equal(resolveRedisBusOptions({ client: createClient({ url: 'redis://u:pw@example.com:6390' }) }).name, 'redis://example.com:6390')
  t.equal(resolveRedisBusOptions({ client: createClient({ socket: { host: 'db', port: 7001 }, password: 'pw' }) }).name, 'redis://db:7001')
  t.equal(resolveRedisBusOptions({ client: createClient({ socket: { tls: true, host: 'db' } }) }).name, 'rediss://db:6379')
  t.equal(resolveRedisBusOptions({ client: createClient() }).name, 'redis://localhost:6379')
  t.equal(resolveRedisBusOptions({ client: createClient({ socket: { path: '/run/redis.sock', tls: false } }) }).name, 'unix:/run/redis.sock')
  t.equal(resolveRedisBusOptions({ client: { duplicate () {} } }).name, 'redis://localhost:6379', 'a client-like object without options')
})

t.test('reconnect delays double up to about two seconds', async (t) => {
  t.ok(reconnectDelay(0) >= 50 && reconnectDelay(0) < 100)
  t.ok(reconnectDelay(3) >= 400 && reconnectDelay(3) < 450)
  t.ok(reconnectDelay(30) >= 2000 && reconnectDelay(30) < 2050)
})
