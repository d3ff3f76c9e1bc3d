// The Go load generator of npm run bench (bench/gogen) cannot rot: it is built as the runner builds
// it, then runs tiny jobs of every kind it knows against real bench servers (raw TCP, ours through a
// plugin route, ours as a bare Upgrader) over the runner's IPC protocol. Ours is strict about
// framing and masking, so a generator that wrote a bad frame would lose its connections, which the
// result reports as an error. No timing is asserted.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import type { Job, JobResult, ServerKind } from '../bench/shared/messages.js'
import { GOGEN_SOURCE, buildGoGenerator, goEnv, goVersion } from '../bench/runner/build-gogen.js'
import { GeneratorProcess } from '../bench/runner/generator-process.js'
import { LoadGenerators } from '../bench/runner/generators.js'
import { ServerProcess } from '../bench/runner/server-process.js'

// A first `go build` compiles the standard library into an empty cache: about 35 s on a busy 2-core
// machine, on top of the jobs; far more than the suite's 120 s per file would allow for.
t.setTimeout(300_000)
const goMissing = goVersion() === undefined ? 'no `go` command (install golang-go) to build bench/gogen' : false
const RESULT_FIELDS = ['messages', 'seconds', 'payloadBytes', 'p50Us', 'p99Us', 'genCpu', 'extensions', 'timeToAllMs', 'opened']
const TIMING = { warmupMs: 50, durationMs: 250 }

function startServer (t: Test, kind: ServerKind, compress = false, mode: 'echo' | 'broadcast' = 'echo'): Promise<ServerProcess> {
  return ServerProcess.start({ kind, mode, compress, ours: 'auto', env: process.env, cpu: undefined, fdLimit: undefined, args: [] }).then((server) => {
    t.teardown(() => server.stop())
    return server
  })
}

function echoJob (port: number, transport: 'ws' | 'tcp', fields: Partial<Job> = {}): Job {
  return { type: 'echo', port, transport, connections: 3, size: 32, text: true, inFlight: 2, deflate: false, ...TIMING, ...fields } as Job
}

/** Runs a job, noting the events the generator sent on the way. */
async function runJob (generator: GeneratorProcess, job: Job): Promise<{ result: JobResult, events: string[] }> {
  const events: string[] = []
  const result = await generator.run(job, {
    windowStart: () => events.push('window-start'),
    windowEnd: () => events.push('window-end'),
    holding: async (opened) => { events.push(`holding ${opened}`) }
  })
  return { result, events }
}

t.test('bench/gogen builds into the cache and runs every job kind over the runner\'s protocol', { skip: goMissing }, async (t) => {
  const build = buildGoGenerator()
  if ('error' in build) throw new Error(build.error)
  t.ok(existsSync(build.binary), 'the binary is in the cache')
  t.match(build.binary, /node_modules\/\.cache\/fastify-wsconn-bench\/gogen\/bin\/gogen-[0-9a-f]{16}$/)
  const again = buildGoGenerator()
  if ('error' in again) throw new Error(again.error)
  t.equal(again.binary, build.binary, 'unchanged sources reuse the same binary')
  t.match(again.note, /cached/)

  const generator = new GeneratorProcess(undefined, undefined, build.binary)
  t.teardown(() => generator.stop())
  const [tcp, route, bare] = await Promise.all([startServer(t, 'tcp'), startServer(t, 'wsconn'), startServer(t, 'wsconn-bare')])
  t.match(route.impl, /plugin/, 'wsconn is ours through the plugin route')
  t.match(bare.impl, /bare Upgrader/, 'wsconn-bare is the bare Upgrader')

  for (const [name, server, transport] of [['raw TCP', tcp, 'tcp'], ['ours (route)', route, 'ws'], ['ours (bare)', bare, 'ws']] as const) {
    const { result, events } = await runJob(generator, echoJob(server.port, transport))
    t.same(Object.keys(result).filter((k) => RESULT_FIELDS.includes(k)).sort(), [...RESULT_FIELDS].sort(), `${name}: the result has every field`)
    t.equal(result.error, undefined, `${name}: no connection lost`)
    t.ok(result.messages > 0, `${name}: echoes counted`)
    t.equal(result.payloadBytes, result.messages * 32)
    t.ok(result.seconds > 0)
    t.ok(result.p99Us >= result.p50Us, `${name}: p99 is not below p50`)
    t.same(events, ['window-start', 'window-end'], `${name}: the window is announced`)
  }

  // 64 KiB frames span many reads: counting from headers must still find every message's end.
  const large = await runJob(generator, echoJob(route.port, 'ws', { size: 64 * 1024, text: false, inFlight: 1, connections: 2 }))
  t.equal(large.result.error, undefined)
  t.ok(large.result.messages > 0, 'large binary echoes counted')

  const handshakes = await runJob(generator, { type: 'handshake', port: bare.port, transport: 'ws', concurrency: 2, size: 32, ...TIMING })
  t.equal(handshakes.result.error, undefined, 'every cycle ended with the server\'s close')
  t.ok(handshakes.result.messages > 0, 'handshake cycles counted')
  const tcpCycles = await runJob(generator, { type: 'handshake', port: tcp.port, transport: 'tcp', concurrency: 2, size: 32, ...TIMING })
  t.ok(tcpCycles.result.messages > 0, 'TCP connect/echo/close cycles counted')

  const idle = await runJob(generator, { type: 'idle', port: route.port, transport: 'ws', connections: 5, deflate: false })
  t.equal(idle.result.opened, 5)
  t.same(idle.events, ['holding 5'], 'the runner is told when the connections are held')
})

t.test('go test: frame counting wherever reads cut the stream, masking, payloads equal to the Node generator\'s, histogram', { skip: goMissing }, async (t) => {
  const result = spawnSync('go', ['test', '-count=1', '.'], { cwd: GOGEN_SOURCE, env: goEnv(), encoding: 'utf8' })
  t.equal(result.status, 0, result.stdout + result.stderr)
  t.match(result.stdout, /^ok\s/m)
})

t.test('with permessage-deflate, pre-compressed frames are echoed and counted', { skip: goMissing }, async (t) => {
  const build = buildGoGenerator()
  if ('error' in build) throw new Error(build.error)
  const generator = new GeneratorProcess(undefined, undefined, build.binary)
  t.teardown(() => generator.stop())
  const [bare, plain] = await Promise.all([startServer(t, 'wsconn-bare', true), startServer(t, 'wsconn-bare')])
  const { result } = await runJob(generator, echoJob(bare.port, 'ws', { size: 1024, deflate: true, inFlight: 1 }))
  t.match(result.extensions, /permessage-deflate/)
  t.equal(result.error, undefined, 'the server inflated every frame')
  t.ok(result.messages > 0)
  const refused = await runJob(generator, echoJob(plain.port, 'ws', { size: 1024, deflate: true, inFlight: 1 }))
  t.equal(refused.result.na, 'permessage-deflate not negotiated', 'a server without compression gives n/a, not numbers')
  const idle = await runJob(generator, { type: 'idle', port: bare.port, transport: 'ws', connections: 3, deflate: true })
  t.equal(idle.result.opened, 3, 'idle connections did their compressed echo first')
})

t.test('a broadcast reaches every client, and each repeat is timed', { skip: goMissing }, async (t) => {
  const build = buildGoGenerator()
  if ('error' in build) throw new Error(build.error)
  const generator = new GeneratorProcess(undefined, undefined, build.binary)
  t.teardown(() => generator.stop())
  const route = await startServer(t, 'wsconn', false, 'broadcast')
  const { result, events } = await runJob(generator, { type: 'broadcast', port: route.port, transport: 'ws', connections: 4, size: 1024, repeats: 3 })
  t.equal(result.error, undefined)
  t.equal(result.timeToAllMs.length, 3)
  t.equal(result.messages, 12, 'every client got every repeat')
  t.same(events, ['holding 4', 'window-start', 'window-end'])
})

t.test('a refused connection is an error in the result, not a crash', { skip: goMissing }, async (t) => {
  const build = buildGoGenerator()
  if ('error' in build) throw new Error(build.error)
  const generator = new GeneratorProcess(undefined, undefined, build.binary)
  t.teardown(() => generator.stop())
  const tcp = await startServer(t, 'tcp')
  await tcp.stop()
  const { result } = await runJob(generator, echoJob(tcp.port, 'ws'))
  t.match(result.error, /connection 1 of 3 failed: .*connection refused/)
  t.equal(result.messages, 0)
  const unknown = await runJob(generator, { type: 'fanout' } as Job)
  t.match(unknown.result.error, /no "fanout" job/, 'a job it does not know is refused in words')
  const after = await runJob(generator, echoJob((await startServer(t, 'tcp')).port, 'tcp'))
  t.ok(after.result.messages > 0, 'the generator goes on with the next job')
})

t.test('--generator=node skips Go; auto names the generator it chose', async (t) => {
  const node = LoadGenerators.create('node', undefined, undefined)
  t.match(node.note, /^load generator: Node/)
  await node.stop()
  const auto = LoadGenerators.create('auto', undefined, undefined)
  t.match(auto.note, goMissing === false ? /^load generator: Go/ : /Node.*unavailable/)
  await auto.stop()
})
