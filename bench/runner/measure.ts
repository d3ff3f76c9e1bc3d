import type { JobResult, ServerAnswer } from '../shared/messages.js'
import type { Settings } from './args.js'
import type { LoadGenerator } from './generator-process.js'
import type { Scenario } from './scenarios.js'
import { busyCores, systemTimes, type SystemTimes } from './system-cpu.js'
import type { ServerProcess } from './server-process.js'

/** One server's numbers in one round of one scenario. */
export interface Sample {
  msgsPerSec: number
  mbPerSec: number
  p50Ms: number
  p99Ms: number
  /** CPU time over wall time of the measured window (1 = one core); NaN when not measured. */
  serverCpu: number
  genCpu: number
  /** CPU used by everything else on the machine during the window (other jobs disturb the numbers). */
  otherCpu: number
  /** Broadcast: median milliseconds until every client had the message. */
  timeToAllMs: number
  /** Idle RSS: KiB of server RSS per connection. */
  rssPerConnKiB: number
  /** Idle RSS: KiB of the server's V8 heap per connection (the JS objects' share of the RSS). */
  heapPerConnKiB: number
  extensions: string
  na?: string
  error?: string
}

const CONNECTIONS_TIMEOUT_MS = 60_000

/** Drives one server with the generator for one scenario and collects both sides' numbers. */
/** Heap snapshots to take around the held connections of an idle-RSS scenario (after each RSS reading). */
export interface HeapSnapshots {
  before: string
  after: string
}

export async function measure (scenario: Scenario, server: ServerProcess, generator: LoadGenerator, settings: Settings, manyConnections: number, cores: number, snapshots?: HeapSnapshots): Promise<Sample> {
  const job = scenario.job(server.port, server.kind === 'tcp' ? 'tcp' : 'ws', settings, manyConnections)
  let cpuStart: Promise<ServerAnswer> | undefined
  let cpuEnd: Promise<ServerAnswer> | undefined
  let machineStart: SystemTimes | undefined
  let machineEnd: SystemTimes | undefined
  let before: ServerAnswer | undefined
  let after: ServerAnswer | undefined
  let holdError: string | undefined
  // The first snapshot comes before the first RSS reading, so that its own memory is in both readings.
  if (scenario.metric === 'rss' && snapshots !== undefined) await server.query('heap-snapshot', snapshots.before)
  if (scenario.metric === 'rss') before = await server.query('rss')
  const result = await generator.run(job, {
    windowStart: () => {
      cpuStart = server.query('cpu')
      machineStart = systemTimes()
    },
    windowEnd: () => {
      cpuEnd = server.query('cpu')
      machineEnd = systemTimes()
    },
    holding: async (opened) => {
      try {
        await waitForConnections(server, opened)
        if (scenario.metric === 'rss') after = await server.query('rss')
        if (after !== undefined && snapshots !== undefined) await server.query('heap-snapshot', snapshots.after)
      } catch (err) {
        holdError = (err as Error).message
      }
    }
  })
  const serverCpu = cpuStart !== undefined && cpuEnd !== undefined ? share(await cpuStart, await cpuEnd) : NaN
  const sample = toSample(result, serverCpu, holdError)
  if (before !== undefined && after !== undefined && result.opened > 0) {
    sample.rssPerConnKiB = (after.value - before.value) / result.opened / 1024
    sample.heapPerConnKiB = ((after.heapUsed ?? NaN) - (before.heapUsed ?? NaN)) / result.opened / 1024
  }
  sample.otherCpu = Math.max(0, busyCores(machineStart, machineEnd, cores) - serverCpu - sample.genCpu)
  return sample
}

function share (start: ServerAnswer, end: ServerAnswer): number {
  const wallMs = (end.wallMs ?? 0) - (start.wallMs ?? 0)
  return wallMs > 0 ? (end.value - start.value) / 1000 / wallMs : NaN
}

async function waitForConnections (server: ServerProcess, wanted: number): Promise<void> {
  const deadline = Date.now() + CONNECTIONS_TIMEOUT_MS
  for (;;) {
    const open = (await server.query('connections')).value
    if (open >= wanted) return
    if (Date.now() > deadline) throw new Error(`the server saw only ${open} of ${wanted} connections`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function toSample (r: JobResult, serverCpu: number, holdError: string | undefined): Sample {
  const sorted = [...r.timeToAllMs].sort((a, b) => a - b)
  return {
    msgsPerSec: r.seconds > 0 ? r.messages / r.seconds : NaN,
    mbPerSec: r.seconds > 0 ? r.payloadBytes / r.seconds / 1e6 : NaN,
    p50Ms: r.p50Us / 1000,
    p99Ms: r.p99Us / 1000,
    serverCpu,
    genCpu: r.seconds > 0 ? r.genCpu : NaN,
    otherCpu: NaN,
    timeToAllMs: sorted.length > 0 ? sorted[Math.floor(sorted.length / 2)]! : NaN,
    rssPerConnKiB: NaN,
    heapPerConnKiB: NaN,
    extensions: r.extensions,
    na: r.na,
    error: r.error ?? holdError
  }
}
