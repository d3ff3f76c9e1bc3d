// npm run bench:http2: scenarios (a), (c) and (h) of `npm run bench` over HTTP/1.1 and over
// cleartext HTTP/2 (RFC 8441 extended CONNECT), against the same build of ours (the plugin's
// route) in two server processes; see bench/README.md.
import os from 'node:os'
import path from 'node:path'
import { buildOurs } from './runner/build-ours.js'
import { inspectEnvironment, serverEnv } from './runner/environment.js'
import type { Settings } from './runner/args.js'
import { GeneratorProcess } from './runner/generator-process.js'
import type { Sample } from './runner/measure.js'
import { ROOT, installCleanup } from './runner/procs.js'
import { ServerProcess } from './runner/server-process.js'
import { TIME_WAIT_CALM } from './runner/time-wait.js'
import { parseHttp2Args, type Http2Settings } from './http2/args.js'
import { failedSample, measureVariant } from './http2/measure.js'
import { markdownTable, ratioLines, rows, textTable, type Http2Run } from './http2/report.js'
import { writeHttp2Results } from './http2/results.js'
import { HTTP2_SCENARIOS, type Http2Scenario, type Protocol } from './http2/scenarios.js'

async function main (): Promise<void> {
  let settings: Http2Settings
  try {
    settings = parseHttp2Args(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    process.exitCode = 2
    return
  }
  installCleanup()
  const environment = inspectEnvironment({ pin: settings.pin, manyConnections: 100 } as Settings)
  const ours = settings.fromSource ? { root: path.join(ROOT, 'lib'), note: 'lib/ from TypeScript source via tsx' } : buildOurs()
  const header = [
    `fastify-wsconn over HTTP/2 beside HTTP/1.1, ${settings.quick ? 'SMOKE RUN (--quick): short windows, not a benchmark result' : 'full run'}`,
    `date ${new Date().toISOString()}; node ${environment.node}; ${environment.cores} cores (${environment.cpuModel}); ${os.platform()} ${os.arch()}`,
    `command: ${settings.command}`,
    `${environment.pinNote}; ${environment.fdNote}`,
    ...protocolLines(settings.tls),
    'load generator: one process; HTTP/1.1 as in npm run bench (net sockets, onread into one buffer); HTTP/2 through Node\'s own http2 client with Chromium\'s windows (6 MiB per stream, 15 MiB per session); both write pre-masked frames and count echoes from frame headers',
    `${settings.rounds} round(s), fresh server processes per scenario and round, the order of the rows alternating between rounds; ${settings.warmupMs} ms warm-up + ${settings.durationMs} ms measured per row${settings.rounds > 1 ? '; medians over the rounds' : ''}`,
    ...(settings.scenarios.includes('h') && settings.drain ? [`before each HTTP/1.1 (h) run the runner waits (up to 70 s) until fewer than ${TIME_WAIT_CALM} TCP sockets are in TIME_WAIT`] : []),
    'CPU = process CPU time / wall time over the measured window (100% = one core); other CPU = the rest of the machine; per server CPU-s = rate / server CPU',
    `build of ours: ${ours.note}`
  ]
  console.log(header.join('\n'))
  const generator = new GeneratorProcess(environment.generatorCpu, environment.raiseFdLimit ? environment.fdLimit : undefined)
  const { env } = serverEnv('fixed', ours.root)
  const impl = new Map<Protocol, string>()
  const runs: Http2Run[] = []
  try {
    for (const scenario of HTTP2_SCENARIOS.filter((s) => settings.scenarios.includes(s.letter))) {
      const run: Http2Run = { scenario, samples: new Map(scenario.variants.map((v) => [v.label, []])) }
      for (let round = 1; round <= settings.rounds; round++) await runRound(run, round, settings, { generator, env, environment, impl })
      console.log('\n' + textTable(rows([run])) + '\n  ' + ratioLines([run]).join('\n  '))
      runs.push(run)
    }
  } finally {
    progress('')
    await generator.stop()
  }
  const implLines = [...impl].map(([protocol, text]) => `ours over ${protocol === 'http1' ? 'HTTP/1.1' : 'HTTP/2'}: ${text}`)
  const warnings = disturbance(runs)
  const ratiosText = ratioLines(runs)
  console.log(['', ...implLines, ...warnings, '', textTable(rows(runs)), '', 'HTTP/2 ÷ HTTP/1.1:', ...ratiosText.map((l) => `  ${l}`)].join('\n'))
  if (settings.write) {
    const file = path.join(ROOT, 'bench', 'RESULTS.md')
    writeHttp2Results(file, [
      ...[...header.slice(1), ...implLines, ...warnings].map((l) => `- ${l}`), '',
      markdownTable(rows(runs)), '',
      'HTTP/2 ÷ HTTP/1.1 (medians):', '', ...ratiosText.map((l) => `- ${l}`), ''
    ].join('\n'), settings.tls)
    console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
  }
  if (runs.some((run) => [...run.samples.values()].some((samples) => samples.every((s) => !Number.isFinite(s.msgsPerSec))))) process.exitCode = 1
}

/** What the header says about the servers and the protocols, cleartext or TLS. */
function protocolLines (tls: boolean): string[] {
  if (!tls) {
    return [
      'servers: the same build of ours (the plugin, one websocket route echoing with readMessage/writeMessage) in two processes: Fastify() for HTTP/1.1 and Fastify({ http2: true }) for h2c, with Node\'s default HTTP/2 settings',
      'h2c: HTTP/2 over cleartext TCP, as HTTP/1.1 is here (no TLS on either side); WebSockets are RFC 8441 extended CONNECT streams'
    ]
  }
  return [
    'servers: the same build of ours (the plugin, one websocket route echoing with readMessage/writeMessage) in two processes: Fastify({ https }) for HTTPS and Fastify({ http2: true, https }) for HTTP/2 over TLS (no allowHTTP1), with Node\'s default HTTP/2 settings',
    'TLS on both sides: a self-signed ECDSA P-256 certificate, ALPN http/1.1 or h2, Node\'s default TLS versions and ciphers; each HTTP/1.1 WebSocket has its own TLS connection, the HTTP/2 ones share their session\'s; WebSockets over HTTP/2 are RFC 8441 extended CONNECT streams'
  ]
}

interface RoundContext {
  generator: GeneratorProcess
  env: NodeJS.ProcessEnv
  environment: ReturnType<typeof inspectEnvironment>
  impl: Map<Protocol, string>
}

/** Starts one server process per protocol, measures every variant of the scenario once, and stops them. */
async function runRound (run: Http2Run, round: number, settings: Http2Settings, ctx: RoundContext): Promise<void> {
  const protocols: Protocol[] = ['http1', 'http2']
  const started = await Promise.allSettled(protocols.map((protocol) => ServerProcess.start({
    kind: 'wsconn',
    mode: 'echo',
    compress: false,
    ours: 'plugin',
    env: ctx.env,
    cpu: ctx.environment.serverCpu,
    fdLimit: ctx.environment.raiseFdLimit ? ctx.environment.fdLimit : undefined,
    args: [...(protocol === 'http2' ? ['--http2'] : []), ...(settings.tls ? ['--tls'] : [])]
  })))
  try {
    // Alternating the order, so that neither protocol always runs on a warmer (or hotter) machine.
    const variants = round % 2 === 1 ? run.scenario.variants : [...run.scenario.variants].reverse()
    for (const variant of variants) {
      progress(`(${run.scenario.letter}) round ${round}/${settings.rounds}: ${variant.label}`)
      const server = started[protocols.indexOf(variant.protocol)]!
      run.samples.get(variant.label)!.push(await measureOn(server, variant, settings, ctx))
    }
  } finally {
    await Promise.all(started.map((s) => s.status === 'fulfilled' ? s.value.stop() : undefined))
  }
}

async function measureOn (server: PromiseSettledResult<ServerProcess>, variant: Http2Scenario['variants'][number], settings: Http2Settings, ctx: RoundContext): Promise<Sample> {
  if (server.status === 'rejected') return failedSample(`server did not start: ${(server.reason as Error).message}`)
  ctx.impl.set(variant.protocol, server.value.impl + (ctx.environment.serverCpu !== undefined && !server.value.pinned ? ' (pinning failed)' : ''))
  try {
    return await measureVariant(variant, server.value, ctx.generator, settings, ctx.environment.cores)
  } catch (err) {
    return failedSample((err as Error).message)
  }
}

/** Warnings when other processes used the CPU, or the load generator was near its limit. */
function disturbance (runs: Http2Run[]): string[] {
  const samples = runs.flatMap((run) => [...run.samples.values()].flat())
  const worst = Math.max(0, ...samples.map((s) => s.otherCpu).filter(Number.isFinite))
  const saturated = runs.flatMap((run) => [...run.samples].filter(([, list]) => list.some((s) => s.genCpu > 0.9)).map(([label]) => `(${run.scenario.letter}) ${label}`))
  const out: string[] = []
  if (worst >= 0.1) out.push(`WARNING: other processes used up to ${Math.round(worst * 100)}% of a core during a measured window (column "other CPU"); those numbers are disturbed, rerun on an idle machine`)
  if (saturated.length > 0) out.push(`NOTE: the load generator used over 90% of its core in ${saturated.join(', ')}: there the server may not have been the bottleneck`)
  return out
}

function progress (text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`)
}

main().catch((err: unknown) => {
  console.error('bench:http2 failed:', err)
  process.exitCode = 1
})
