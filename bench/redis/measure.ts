import type { ServerAnswer } from '../shared/messages.js'
import type { GeneratorProcess } from '../runner/generator-process.js'
import { busyCores, systemTimes, type SystemTimes } from '../runner/system-cpu.js'
import type { RedisSettings } from './args.js'
import type { FanoutKind } from './protocol.js'
import type { BenchRedis } from './redis-server.js'
import { FanoutProcess, type FanoutLaunch } from './server-process.js'

/** One implementation's numbers in one round. */
export interface FanoutSample {
  deliveriesPerSec: number
  p50Ms: number
  p99Ms: number
  /** CPU time over wall time of the measured window (1 = one core) of server A (publishing), B, Redis and the generator. */
  cpuA: number
  cpuB: number
  redisCpu: number
  genCpu: number
  /** Everything else on the machine during the window. */
  otherCpu: number
  impl: string
  error?: string
}

const SUBSCRIBERS_TIMEOUT_MS = 60_000

/** What a round needs besides the implementation. */
export interface FanoutContext {
  settings: RedisSettings
  redis: BenchRedis
  generator: GeneratorProcess
  launch: Omit<FanoutLaunch, 'kind' | 'redisUrl'>
  cores: number
  /** Subscribers per process after the file-descriptor limit. */
  connections: number
  /** With --profile: the profile files of the runs so far (server A's and B's per run). */
  profiles: string[]
}

/** Starts servers A and B of `kind` on the shared Redis, drives them once, and stops them. */
export async function measureFanout (kind: FanoutKind, ctx: FanoutContext, profileBase?: string): Promise<FanoutSample> {
  const launch = (name: string): FanoutLaunch => {
    const profileFile = profileBase === undefined ? undefined : `${profileBase}-${name}.cpuprofile`
    if (profileFile !== undefined) ctx.profiles.push(profileFile)
    return { ...ctx.launch, kind, redisUrl: ctx.redis.url, profileFile }
  }
  const started = await Promise.allSettled([FanoutProcess.start(launch('A'), 'A'), FanoutProcess.start(launch('B'), 'B')])
  const servers = started.flatMap((s) => s.status === 'fulfilled' ? [s.value] : [])
  try {
    const failure = started.find((s) => s.status === 'rejected')
    if (failure !== undefined) return failed(`server did not start: ${(failure.reason as Error).message}`)
    return await drive(kind, servers[0]!, servers[1]!, ctx)
  } catch (err) {
    return failed((err as Error).message)
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
  }
}

async function drive (kind: FanoutKind, a: FanoutProcess, b: FanoutProcess, ctx: FanoutContext): Promise<FanoutSample> {
  const cpuStart: Array<Promise<ServerAnswer>> = []
  const cpuEnd: Array<Promise<ServerAnswer>> = []
  let machine: [SystemTimes | undefined, SystemTimes | undefined] = [undefined, undefined]
  let redisCpu: [number, number, number, number] = [NaN, NaN, NaN, NaN]
  let holdError: string | undefined
  const { settings } = ctx
  const result = await ctx.generator.run({
    type: 'fanout',
    ports: [a.port, b.port],
    protocol: kind === 'socketio' ? 'socketio' : 'ws',
    connections: ctx.connections,
    size: settings.size,
    inFlight: settings.inFlight,
    warmupMs: settings.warmupMs,
    durationMs: settings.durationMs
  }, {
    holding: async () => {
      try {
        await waitForSubscribers([a, b], ctx.connections)
      } catch (err) {
        holdError = (err as Error).message
      }
    },
    windowStart: () => {
      cpuStart.push(a.cpu(), b.cpu())
      machine = [systemTimes(), undefined]
      redisCpu = [ctx.redis.cpuMicros(), performance.now(), NaN, NaN]
    },
    windowEnd: () => {
      cpuEnd.push(a.cpu(), b.cpu())
      machine[1] = systemTimes()
      redisCpu[2] = ctx.redis.cpuMicros()
      redisCpu[3] = performance.now()
    }
  })
  const error = holdError ?? result.error
  if (error !== undefined) return failed(error, a.impl)
  const [startA, startB, endA, endB] = await Promise.all([...cpuStart, ...cpuEnd])
  const cpuA = share(startA, endA)
  const cpuB = share(startB, endB)
  const redis = (redisCpu[2] - redisCpu[0]) / 1000 / (redisCpu[3] - redisCpu[1])
  return {
    deliveriesPerSec: result.seconds > 0 ? result.messages / result.seconds : NaN,
    p50Ms: result.p50Us / 1000,
    p99Ms: result.p99Us / 1000,
    cpuA,
    cpuB,
    redisCpu: redis,
    genCpu: result.genCpu,
    otherCpu: Math.max(0, busyCores(machine[0], machine[1], ctx.cores) - cpuA - cpuB - (Number.isFinite(redis) ? redis : 0) - result.genCpu),
    impl: a.impl
  }
}

async function waitForSubscribers (servers: FanoutProcess[], wanted: number): Promise<void> {
  const deadline = Date.now() + SUBSCRIBERS_TIMEOUT_MS
  for (;;) {
    const counts = await Promise.all(servers.map((s) => s.subscribers()))
    if (counts.every((n) => n >= wanted)) return
    if (Date.now() > deadline) throw new Error(`the servers saw only ${counts.join(' and ')} of ${wanted} subscribers`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function share (start: ServerAnswer | undefined, end: ServerAnswer | undefined): number {
  if (start === undefined || end === undefined) return NaN
  const wallMs = (end.wallMs ?? 0) - (start.wallMs ?? 0)
  return wallMs > 0 ? (end.value - start.value) / 1000 / wallMs : NaN
}

function failed (error: string, impl = ''): FanoutSample {
  return { deliveriesPerSec: NaN, p50Ms: NaN, p99Ms: NaN, cpuA: NaN, cpuB: NaN, redisCpu: NaN, genCpu: NaN, otherCpu: NaN, impl, error }
}
