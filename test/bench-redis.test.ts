// npm run bench:redis (bench/redis.ts) cannot rot: a tiny run against a real redis-server gives a
// Socket.IO row and an ours row with numbers; its pure parts (the
// Engine.IO packets the generator reads, message heads across chunk boundaries, options, the
// target, the RESULTS.md section) are checked with made-up input. No timing is asserted.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { FANOUT_ORDER, parseRedisArgs } from '../bench/redis/args.js'
import { Packet, classify, publishFrame, sequenceOf } from '../bench/load/fanout-wire.js'
import { HeadReader } from '../bench/load/heads.js'
import { compare, summarizeFanout, type FanoutSummary } from '../bench/redis/report.js'
import { withRedisResults } from '../bench/redis/results.js'

/** A server's unmasked text frame, as the servers send them. */
function serverFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  const header = payload.length < 126 ? Buffer.from([0x81, payload.length]) : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, payload])
}

/** The payload of a masked client frame (the inverse of maskedFrame). */
function unmask (frame: Buffer): string {
  const len7 = frame[1]! & 0x7f
  const start = len7 === 126 ? 4 : len7 === 127 ? 10 : 2
  const mask = frame.subarray(start, start + 4)
  const payload = Buffer.from(frame.subarray(start + 4))
  for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!
  return payload.toString()
}

t.test('the publish frame carries the sequence number where each server\'s subscribers find it', async (t) => {
  const ours = unmask(publishFrame('ws', 42, 1024))
  t.equal(ours.length, 1024)
  t.match(ours, /^0000000042abc/)
  const sio = unmask(publishFrame('socketio', 7, 64))
  t.same(JSON.parse(sio.slice(2)), ['p', '0000000007' + 'abcdefghijklmnopqrstuvwxyz'.repeat(3).slice(0, 54)], 'a 42 EVENT packet of the publish event')
  t.match(sio, /^42\[/)
  // What the Socket.IO servers send each subscriber: the room's event with the same argument.
  const received = Buffer.from(`42["m","${JSON.parse(sio.slice(2))[1] as string}"]`)
  t.equal(classify('socketio', received, 32), Packet.Message)
  t.equal(sequenceOf('socketio', received, 32), 7)
  t.equal(sequenceOf('ws', Buffer.from(ours), 32), 42)
  t.equal(sequenceOf('ws', Buffer.from('00000x0042'), 10), -1, 'a non-digit is no sequence number')
  t.equal(sequenceOf('ws', Buffer.from('12345'), 5), -1, 'too short')
})

t.test('Engine.IO v4 packets are told apart by their first bytes', async (t) => {
  const kind = (text: string): Packet => classify('socketio', Buffer.from(text), Math.min(text.length, 32))
  t.equal(kind('0{"sid":"abc","upgrades":[],"pingInterval":25000}'), Packet.Open)
  t.equal(kind('40{"sid":"xyz"}'), Packet.Connected)
  t.equal(kind('2'), Packet.Ping)
  t.equal(kind('42["m","0000000001"]'), Packet.Message)
  t.equal(kind('44{"message":"invalid"}'), Packet.Other, 'a CONNECT_ERROR is not a message')
  t.equal(kind('3'), Packet.Other)
  t.equal(classify('ws', Buffer.from('2'), 1), Packet.Message, 'our plugin has no packet layer')
})

t.test('HeadReader keeps each message\'s first bytes however the stream is cut', async (t) => {
  const messages = ['0{"sid":"a"}', '40{"sid":"b"}', `42["m","0000000005${'x'.repeat(300)}"]`, '2']
  const stream = Buffer.concat([...messages.map(serverFrame), Buffer.from([0x8a, 0x00]), Buffer.from([0x88, 0x02, 0x03, 0xe8])])
  for (const cut of [1, 2, 3, 7, 64, stream.length]) {
    const heads: string[] = []
    const reader = new HeadReader((head, length) => heads.push(head.toString('latin1', 0, length)))
    let counted = 0
    for (let i = 0; i < stream.length; i += cut) counted += reader.push(stream, i, Math.min(stream.length, i + cut))
    t.equal(counted, 4, `chunks of ${cut}: four data messages`)
    t.same(heads, messages.map((m) => m.slice(0, 32)), `chunks of ${cut}: heads of at most 32 bytes`)
    t.equal(reader.pongs, 1)
    t.ok(reader.closed)
  }
})

t.test('options: defaults, the quick preset and refusals', async (t) => {
  const full = parseRedisArgs([])
  t.equal(full.connections, 5000, '5,000 subscribers per process')
  t.same(full.servers, FANOUT_ORDER)
  t.equal(full.write, true)
  const quick = parseRedisArgs(['--quick', '--connections=20', '--servers=socketio'])
  t.same([quick.connections, quick.rounds, quick.write, quick.servers], [20, 1, false, ['socketio']])
  t.throws(() => parseRedisArgs(['--servers=ws']), /--servers: unknown "ws"/)
  t.throws(() => parseRedisArgs(['--connections=0']), /--connections must be a positive integer/)
  t.throws(() => parseRedisArgs(['--in-flight=2000']), /at most 512/)
  t.throws(() => parseRedisArgs(['--bogus']), /unknown option --bogus/)
})

t.test('the target: 3× Socket.IO\'s deliveries/s at a lower p99', async (t) => {
  const summary = (deliveriesPerSec: number, p99Ms: number): FanoutSummary =>
    summarizeFanout([{ deliveriesPerSec, p99Ms, p50Ms: 1, cpuA: 1, cpuB: 1, redisCpu: 0, genCpu: 0, otherCpu: 0, impl: '' }])
  t.equal(compare(summary(300, 9), summary(100, 10)).status, 'met')
  t.equal(compare(summary(299, 9), summary(100, 10)).status, 'MISSED', 'below 3×')
  t.equal(compare(summary(900, 10), summary(100, 10)).status, 'MISSED', 'p99 not lower')
  t.equal(compare(undefined, summary(100, 10)).status, 'n/a')
  const failed = summarizeFanout([{ deliveriesPerSec: NaN, p99Ms: NaN, p50Ms: NaN, cpuA: NaN, cpuB: NaN, redisCpu: NaN, genCpu: NaN, otherCpu: NaN, impl: '', error: 'no Redis' }])
  t.same([failed.rounds, failed.errors], [0, ['no Redis']])
  t.equal(compare(failed, summary(100, 10)).status, 'n/a')
})

t.test('RESULTS.md: the Redis section is added once, then only its inside is rewritten', async (t) => {
  const start = '# Benchmark results\n\n<!-- bench:begin -->\ntable\n<!-- bench:end -->\n\n## Reading the numbers\n\nnotes\n'
  const first = withRedisResults(start, 'run 1')
  t.ok(first.startsWith(start.trimEnd()), 'the rest is kept as it was')
  t.match(first, /## Fan-out across processes through Redis[^\n]*\n\n<!-- bench-redis:begin[^\n]*-->\nrun 1\n<!-- bench-redis:end -->\n$/)
  const second = withRedisResults(first.replace('<!-- bench-redis:end -->\n', '<!-- bench-redis:end -->\n\nmy analysis\n'), 'run 2')
  t.notMatch(second, 'run 1')
  t.match(second, 'run 2\n<!-- bench-redis:end -->\n\nmy analysis\n', 'text after the section survives')
  t.equal(second.split('## Fan-out across processes').length, 2, 'one section')
})

const redisMissing = existsSync('/usr/bin/redis-server') || existsSync('/usr/local/bin/redis-server')
  ? false
  : 'redis-server not found: install Debian\'s redis-server package (.ci/run does)'

t.test('a tiny run: two processes per implementation on one real redis-server', { skip: redisMissing }, async (t) => {
  const run = await bench(['--quick', '--connections=20', '--warmup=100', '--duration=300', '--no-pin', '--no-write', '--from-source'])
  const output = run.stdout + run.stderr
  t.match(run.stdout, /redis-server [\d.]+ on 127\.0\.0\.1:\d+/, 'the bench started its own redis-server')
  t.match(run.stdout, /2 server processes \(A publishes, B only receives\) × 20 subscribers/)
  const row = (label: string): RegExp => new RegExp(`^ {2}${label} +[\\d,]+ +[\\d,]+ +[\\d.]+ +[\\d.]+ +[\\d.]+ `, 'm')
  t.match(run.stdout, row('Socket\\.IO'), `Socket.IO delivered to both processes\n${output}`)
  t.match(run.stdout, row('ours'), `ours delivered to both processes\n${output}`)
  t.match(run.stdout, /ours\/Socket\.IO: [\d.]+× deliveries\/s, p99 [\d.]+× .*; [\d.]+× deliveries per CPU-second/)
  t.match(run.stdout, /^ours: plugin .* with pubsub\.redis/m, 'ours is the plugin with its pubsub option')
  t.equal(run.code, 0, 'exit code 0')
})

t.test('bad options exit 2 with the usage', async (t) => {
  const run = await bench(['--servers=nope'])
  t.equal(run.code, 2)
  t.match(run.stderr, /--servers: unknown "nope"/)
})

function bench (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/redis.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
