// npm run bench:http2 (bench/http2.ts) cannot rot: a tiny run gives a row with numbers for every
// protocol of scenarios (a), (c) and (h) and the HTTP/2 ÷ HTTP/1.1 ratios; the generator's HTTP/2
// loads are checked against a real h2c server of ours; options, ratios and the RESULTS.md section
// are checked with made-up input. No timing is asserted.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { HTTP2_LETTERS, parseHttp2Args } from '../bench/http2/args.js'
import { ratios, rows, type Http2Run } from '../bench/http2/report.js'
import { withHttp2Results } from '../bench/http2/results.js'
import { H2_EACH, H2_SHARED, HTTP1, HTTP2_SCENARIOS } from '../bench/http2/scenarios.js'
import { runH2Echo } from '../bench/load/h2-echo.js'
import { runH2Handshakes } from '../bench/load/h2-handshake.js'
import { runHandshakes } from '../bench/load/handshake.js'
import { selfSignedCert } from './helpers/tls.js'
import type { Sample } from '../bench/runner/measure.js'

t.test('options: defaults, the quick preset and refusals', async (t) => {
  const full = parseHttp2Args([])
  t.same([full.scenarios, full.rounds, full.concurrency, full.write, full.drain], [HTTP2_LETTERS, 3, 50, true, true])
  t.equal(full.tls, false, 'cleartext unless told')
  const quick = parseHttp2Args(['--quick', '--scenario=h,a', '--no-drain', '--tls'])
  t.same([quick.scenarios, quick.rounds, quick.write, quick.drain, quick.tls], [['a', 'h'], 1, false, false, true])
  t.throws(() => parseHttp2Args(['--scenario=b']), /--scenario: unknown "b"/)
  t.throws(() => parseHttp2Args(['--rounds=0']), /--rounds must be a positive integer/)
  t.throws(() => parseHttp2Args(['--servers=ws']), /unknown option --servers/)
})

t.test('scenarios: HTTP/1.1 first (the base of every ratio), then HTTP/2 with a session each and with one session', async (t) => {
  t.same(HTTP2_SCENARIOS.map((s) => [s.letter, s.variants.map((v) => v.label)]), [
    ['a', [HTTP1, H2_EACH, H2_SHARED]],
    ['c', [HTTP1, H2_EACH, H2_SHARED]],
    ['h', [HTTP1, H2_SHARED]]
  ])
  const settings = parseHttp2Args(['--quick'])
  const [a, c] = HTTP2_SCENARIOS
  t.match(a!.variants[0]!.job(1, settings), { type: 'echo', transport: 'ws', connections: 100, size: 32, text: true, inFlight: 1 })
  t.match(a!.variants[1]!.job(1, settings), { type: 'h2-echo', connections: 100, sessions: 100, size: 32, text: true, inFlight: 1 })
  t.match(c!.variants[2]!.job(1, settings), { type: 'h2-echo', connections: 10, sessions: 1, size: 65536, text: false, inFlight: 1, tls: false })
  const tls = parseHttp2Args(['--tls'])
  t.ok(HTTP2_SCENARIOS.every((s) => s.variants.every((v) => (v.job(1, tls) as { tls?: boolean }).tls === true)), 'with --tls every job is over TLS')
})

t.test('ratios divide each HTTP/2 row by the HTTP/1.1 row, in rate and per server CPU-second', async (t) => {
  const sample = (msgsPerSec: number, serverCpu: number): Sample => ({
    msgsPerSec, serverCpu, mbPerSec: 1, p50Ms: 1, p99Ms: 2, genCpu: 0.5, otherCpu: 0, timeToAllMs: NaN, rssPerConnKiB: NaN, heapPerConnKiB: NaN, extensions: ''
  })
  const scenario = HTTP2_SCENARIOS[2]!
  const run: Http2Run = { scenario, samples: new Map([[HTTP1, [sample(100, 1)]], [H2_SHARED, [sample(400, 0.5)]]]) }
  t.same(ratios([run]), [{ letter: 'h', label: H2_SHARED, rate: 4, perCpuSecond: 8 }])
  const failed: Http2Run = { scenario, samples: new Map([[HTTP1, [sample(100, 1)]], [H2_SHARED, [{ ...sample(NaN, NaN), error: 'refused' }]]]) }
  const table = rows([failed])
  t.match(table[1], [String, H2_SHARED, 'not measured'], 'a row that measured nothing says so')
  t.match(table[1]!.at(-1), /error: refused/)
  t.ok(Number.isNaN(ratios([failed])[0]!.rate), 'and its ratio is no number')
})

t.test('RESULTS.md: the HTTP/2 section is added once, then only its inside is rewritten', async (t) => {
  const start = '# Benchmark results\n\n<!-- bench:begin -->\ntable\n<!-- bench:end -->\n\n## Fan-out\n\nnotes\n'
  const first = withHttp2Results(start, 'run 1')
  t.ok(first.startsWith(start.trimEnd()), 'the rest is kept as it was')
  t.match(first, /## WebSocket over HTTP\/2[^\n]*\n\n<!-- bench-http2:begin[^\n]*-->\nrun 1\n<!-- bench-http2:end -->\n$/)
  const second = withHttp2Results(first.replace('<!-- bench-http2:end -->\n', '<!-- bench-http2:end -->\n\nmy analysis\n'), 'run 2')
  t.notMatch(second, 'run 1')
  t.match(second, 'run 2\n<!-- bench-http2:end -->\n\nmy analysis\n', 'text after the section survives')
  const both = withHttp2Results(second, 'tls run', true)
  t.match(both, /## WebSocket over HTTP\/2 beside HTTP\/1\.1, both over TLS[^\n]*\n\n<!-- bench-http2-tls:begin[^\n]*-->\ntls run\n<!-- bench-http2-tls:end -->\n$/, 'the TLS run has a section of its own')
  t.match(both, 'run 2\n<!-- bench-http2:end -->', 'and leaves the cleartext one alone')
})

t.test('the generator\'s HTTP/2 loads against an h2c server of ours', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, { readLimit: 1 << 20 })
  const opened: Array<Promise<unknown>> = []
  app.get('/', { websocket: true }, async (conn) => {
    opened.push(conn.closed.catch(() => {}))
    for await (const message of conn) await conn.writeMessage(message.type, message.data)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const events: string[] = []
  const emit = (e: { event: string }): void => { events.push(e.event) }
  const echo = await runH2Echo({ type: 'h2-echo', port, connections: 4, sessions: 2, size: 70_000, text: false, inFlight: 2, warmupMs: 50, durationMs: 200 }, emit)
  t.equal(echo.error, undefined, 'no stream lost')
  t.ok(echo.messages > 0, 'echoes of messages larger than a stream\'s default window were counted')
  t.equal(echo.payloadBytes, echo.messages * 70_000)
  t.same(events, ['window-start', 'window-end'])
  t.equal(opened.length, 4, 'four WebSockets')
  const handshakes = await runH2Handshakes({ type: 'h2-handshake', port, concurrency: 3, size: 32, warmupMs: 50, durationMs: 200 }, emit)
  t.equal(handshakes.error, undefined, 'every cycle closed cleanly')
  t.ok(handshakes.messages > 0, 'cycles were counted')
  t.ok(opened.length > 4 + handshakes.messages, 'each cycle opened a WebSocket of its own')
  // A CONNECT the session's end caught during its handshake may still become a Conn: wait for those too.
  for (let awaited = 0; awaited < opened.length;) {
    const batch = opened.slice(awaited)
    awaited = opened.length
    await Promise.all(batch)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.websocketConnections.size, 0, 'every WebSocket closed, those cut short by the end of the session too')
  await t.rejects(runH2Echo({ type: 'h2-echo', port: await plainServerPort(t), connections: 1, sessions: 1, size: 1, text: true, inFlight: 1, warmupMs: 1, durationMs: 1 }, emit),
    /does not offer extended CONNECT/, 'an HTTP/2 server without the plugin is reported')
})

t.test('over TLS: the generator\'s loads on HTTPS and on HTTP/2 over TLS', { skip: selfSignedCert() === undefined ? 'openssl not found' : false }, async (t) => {
  const https = selfSignedCert()!
  const apps = [Fastify({ https }), Fastify({ http2: true, https })] as unknown as FastifyInstance[]
  const ports: number[] = []
  for (const app of apps) {
    t.teardown(() => app.close())
    await app.register(fastifyWsconn)
    app.get('/', { websocket: true }, async (conn) => {
      for await (const message of conn) await conn.writeMessage(message.type, message.data)
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    ports.push((app.server.address() as AddressInfo).port)
  }
  const emit = (): void => {}
  const timing = { warmupMs: 50, durationMs: 200, tls: true }
  const h1 = await runHandshakes({ type: 'handshake', port: ports[0]!, transport: 'ws', concurrency: 2, size: 32, ...timing }, emit)
  t.same([h1.error, h1.messages > 0], [undefined, true], 'HTTPS: handshake cycles over TLS connections')
  const echo = await runH2Echo({ type: 'h2-echo', port: ports[1]!, connections: 2, sessions: 1, size: 32, text: true, inFlight: 1, ...timing }, emit)
  t.same([echo.error, echo.messages > 0], [undefined, true], 'HTTP/2 over TLS: echoes')
  const h2 = await runH2Handshakes({ type: 'h2-handshake', port: ports[1]!, concurrency: 2, size: 32, ...timing }, emit)
  t.same([h2.error, h2.messages > 0], [undefined, true], 'HTTP/2 over TLS: handshake cycles on one session')
})

/** An h2c server without the plugin (no SETTINGS_ENABLE_CONNECT_PROTOCOL). */
async function plainServerPort (t: Test): Promise<number> {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

t.test('a tiny run: every protocol of every scenario has a row with numbers, and the ratios', async (t) => {
  const run = await bench(['--quick', '--warmup=100', '--duration=300', '--rounds=1', '--concurrency=4', '--no-pin', '--no-drain', '--no-write', '--from-source'])
  const output = run.stdout + run.stderr
  t.match(run.stdout, /h2c: HTTP\/2 over cleartext TCP/, 'the report says h2c was measured')
  for (const title of ['\\(a\\) 100 conns, 32 B text echo', '\\(c\\) 10 conns, 64 KiB binary echo', '\\(h\\) handshakes/s']) t.match(run.stdout, new RegExp(title))
  const row = (label: string, unit: string): RegExp => new RegExp(`${label.replace(/[/.]/g, '\\$&')} +[\\d,]+ ${unit} +[\\d,]+ +[\\d.]+ +[\\d.]+ +[\\d.]+ `, 'g')
  t.equal(run.stdout.match(row(HTTP1, 'msgs/s'))?.length, 4, `HTTP/1.1 rows of (a) and (c), in the scenario's table and the summary\n${output}`)
  t.equal(run.stdout.match(row(H2_EACH, 'msgs/s'))?.length, 4, `HTTP/2 rows with a session each\n${output}`)
  t.equal(run.stdout.match(row(H2_SHARED, 'msgs/s'))?.length, 4, `HTTP/2 rows with one session\n${output}`)
  t.equal(run.stdout.match(row(HTTP1, 'handshakes/s'))?.length, 2, `HTTP/1.1 handshakes\n${output}`)
  t.equal(run.stdout.match(row(H2_SHARED, 'handshakes/s'))?.length, 2, `HTTP/2 handshakes on one session\n${output}`)
  for (const line of ['\\(a\\) HTTP/2, a session each', '\\(a\\) HTTP/2, one session', '\\(c\\) HTTP/2, a session each', '\\(c\\) HTTP/2, one session']) {
    t.match(run.stdout, new RegExp(`^ {2}${line} ÷ HTTP/1\\.1: [\\d.]+× msgs/s, [\\d.]+× per server CPU-second$`, 'm'))
  }
  t.match(run.stdout, /^ {2}\(h\) HTTP\/2, one session ÷ HTTP\/1\.1: [\d.]+× handshakes\/s/m)
  t.match(run.stdout, /^ours over HTTP\/2: plugin .* over h2c/m, 'ours over HTTP/2 is the plugin, over h2c')
  t.notMatch(output, /error:/, 'no row reports an error')
  t.equal(run.code, 0, 'exit code 0')
})

t.test('bad options exit 2 with the usage', async (t) => {
  const run = await bench(['--scenario=z'])
  t.equal(run.code, 2)
  t.match(run.stderr, /--scenario: unknown "z"/)
})

function bench (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/http2.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
