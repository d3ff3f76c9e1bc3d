// npm run bench:redis: fan-out across two server processes through one real redis-server, ours
// (the plugin with pubsub.redis) beside Socket.IO with @socket.io/redis-adapter; see bench/README.md.
import { mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { buildOurs } from './runner/build-ours.js'
import { inspectEnvironment, serverEnv } from './runner/environment.js'
import type { Settings } from './runner/args.js'
import { times } from './runner/format.js'
import { GeneratorProcess } from './runner/generator-process.js'
import { ROOT, installCleanup } from './runner/procs.js'
import { profileText } from './runner/profile.js'
import { PROFILE_DIR } from './runner/run-scenario.js'
import { parseRedisArgs, type RedisSettings } from './redis/args.js'
import { measureFanout, type FanoutContext, type FanoutSample } from './redis/measure.js'
import { FANOUT_LABELS, type FanoutKind } from './redis/protocol.js'
import { BenchRedis } from './redis/redis-server.js'
import { compare, comparisonText, markdownTable, rows, summarizeFanout, textTable, type FanoutSummary } from './redis/report.js'
import { writeRedisResults } from './redis/results.js'

async function main (): Promise<void> {
  let settings: RedisSettings
  try {
    settings = parseRedisArgs(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    process.exitCode = 2
    return
  }
  installCleanup()
  if (settings.profile) mkdirSync(PROFILE_DIR, { recursive: true })
  // The generator holds both processes' subscribers, so it needs twice the descriptors.
  const environment = inspectEnvironment({ pin: settings.pin, manyConnections: 2 * settings.connections + 1 } as Settings)
  const connections = Math.min(settings.connections, Math.floor((environment.manyConnections - 1) / 2))
  const ours = settings.fromSource || !settings.servers.includes('ours') ? { root: path.join(ROOT, 'lib'), note: 'lib/ from TypeScript source via tsx' } : buildOurs()
  const redis = await BenchRedis.start(environment.serverCpu)
  const generator = new GeneratorProcess(environment.generatorCpu, environment.raiseFdLimit ? environment.fdLimit : undefined)
  const header = [
    `fastify-wsconn fan-out through Redis, ${settings.quick ? 'SMOKE RUN (--quick): short windows, not a benchmark result' : 'full run'}`,
    `date ${new Date().toISOString()}; node ${environment.node}; ${environment.cores} cores (${environment.cpuModel}); ${os.platform()} ${os.arch()}`,
    `command: ${settings.command}`,
    `${environment.pinNote.replace('servers on CPU 0', 'both server processes and redis-server on CPU 0')}; ${environment.fdNote}`,
    `redis-server ${redis.version} on 127.0.0.1:${redis.port} (--save '' --appendonly no), shared by both processes`,
    `2 server processes (A publishes, B only receives) × ${count(connections)} subscribers; ${settings.size} B text messages; ${settings.inFlight} publishes in flight (the next goes out when one has reached all ${count(2 * connections)} subscribers)`,
    `${settings.rounds} round(s) alternating ${settings.servers.map((k) => FANOUT_LABELS[k]).join(', ')}, fresh server processes per run; ${settings.warmupMs} ms warm-up + ${settings.durationMs} ms measured${settings.rounds > 1 ? '; medians over the rounds' : ''}`,
    'latency: from the publisher\'s write of a publish to each subscriber\'s copy (one clock, in the load generator)',
    'CPU = process CPU time / wall time over the measured window (100% = one core); other CPU = the rest of the machine',
    `build of ours: ${ours.note}`
  ]
  console.log(header.join('\n'))
  const ctx: FanoutContext = {
    settings,
    redis,
    generator,
    connections,
    cores: environment.cores,
    profiles: [],
    launch: { env: serverEnv('fixed', ours.root).env, cpu: environment.serverCpu, fdLimit: environment.raiseFdLimit ? environment.fdLimit : undefined }
  }
  const samples = new Map<FanoutKind, FanoutSample[]>(settings.servers.map((k) => [k, []]))
  try {
    for (let round = 1; round <= settings.rounds; round++) {
      for (const kind of settings.servers) {
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[Kround ${round}/${settings.rounds}: ${FANOUT_LABELS[kind]}`)
        samples.get(kind)!.push(await measureFanout(kind, ctx, settings.profile ? path.join(PROFILE_DIR, `redis-${kind}-r${round}`) : undefined))
      }
    }
  } finally {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K')
    await generator.stop()
    await redis.stop()
  }
  const summaries = new Map<FanoutKind, FanoutSummary>([...samples].map(([k, list]) => [k, summarizeFanout(list)]))
  const impl = [...samples].map(([k, list]) => `${FANOUT_LABELS[k]}: ${list.find((s) => s.impl !== '')?.impl ?? 'did not start'}`)
  const table = rows(summaries, settings.size)
  const comparison = [comparisonText(compare(summaries.get('ours'), summaries.get('socketio'))), ...perRound(samples)].join('\n')
  const warnings = disturbance([...samples.values()].flat())
  console.log(['', ...impl, '', textTable(table), '', comparison, ...warnings].join('\n'))
  for (const file of ctx.profiles) {
    try { console.log('\n' + profileText(file, ROOT)) } catch (err) { console.log(`\n${file}: ${(err as Error).message}`) }
  }
  if (settings.write) {
    const file = path.join(ROOT, 'bench', 'RESULTS.md')
    writeRedisResults(file, [...[...header.slice(1), ...impl, ...warnings].map((l) => `- ${l}`), '', markdownTable(table), '', comparison, ''].join('\n'))
    console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
  }
  if ([...summaries.values()].some((s) => s.rounds === 0)) process.exitCode = 1
}

/** The deliveries/s ratio of each round (ours and Socket.IO ran one after the other), to show the spread. */
function perRound (samples: Map<FanoutKind, FanoutSample[]>): string[] {
  const ours = samples.get('ours')
  const socketIo = samples.get('socketio')
  if (ours === undefined || socketIo === undefined || ours.length < 2) return []
  return [`ours/Socket.IO deliveries/s per round: ${ours.map((s, i) => times(s.deliveriesPerSec / socketIo[i]!.deliveriesPerSec)).join(', ')}`]
}

function count (n: number): string {
  return n.toLocaleString('en-US')
}

/** Warnings when other processes used the CPU, or the load generator was near its limit. */
function disturbance (samples: FanoutSample[]): string[] {
  const worst = Math.max(0, ...samples.map((s) => s.otherCpu).filter(Number.isFinite))
  const out: string[] = []
  if (worst >= 0.1) out.push(`WARNING: other processes used up to ${Math.round(worst * 100)}% of a core during a measured window (column "other CPU"); those numbers are disturbed`)
  if (samples.some((s) => s.genCpu > 0.9)) out.push('NOTE: the load generator used over 90% of its core in some run: there the servers may not have been the bottleneck')
  return out
}

main().catch((err: unknown) => {
  console.error('bench:redis failed:', err)
  process.exitCode = 1
})
