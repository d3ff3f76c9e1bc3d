import type { ServerAnswer } from '../shared/messages.js'
import type { GeneratorProcess } from '../runner/generator-process.js'
import type { Sample } from '../runner/measure.js'
import type { ServerProcess } from '../runner/server-process.js'
import { busyCores, systemTimes, type SystemTimes } from '../runner/system-cpu.js'
import { waitForTimeWaitToDrain } from '../runner/time-wait.js'
import type { Http2Settings } from './args.js'
import type { Variant } from './scenarios.js'

/**
 * Drives `server` with one variant's job and returns the numbers as `npm run bench` keeps them:
 * rate, payload MB/s, latency, the server's and generator's CPU and the rest of the machine's.
 */
export async function measureVariant (variant: Variant, server: ServerProcess, generator: GeneratorProcess, settings: Http2Settings, cores: number): Promise<Sample> {
  const job = variant.job(server.port, settings)
  // Only an HTTP/1.1 handshake run opens a TCP connection per cycle, and pays for earlier ones in TIME_WAIT.
  if (job.type === 'handshake' && settings.drain) await waitForTimeWaitToDrain()
  let cpuStart: Promise<ServerAnswer> | undefined
  let cpuEnd: Promise<ServerAnswer> | undefined
  let machine: [SystemTimes | undefined, SystemTimes | undefined] = [undefined, undefined]
  const result = await generator.run(job, {
    windowStart: () => {
      cpuStart = server.query('cpu')
      machine = [systemTimes(), undefined]
    },
    windowEnd: () => {
      cpuEnd = server.query('cpu')
      machine[1] = systemTimes()
    }
  })
  const serverCpu = cpuStart !== undefined && cpuEnd !== undefined ? share(await cpuStart, await cpuEnd) : NaN
  const genCpu = result.seconds > 0 ? result.genCpu : NaN
  return {
    msgsPerSec: result.seconds > 0 ? result.messages / result.seconds : NaN,
    mbPerSec: result.seconds > 0 ? result.payloadBytes / result.seconds / 1e6 : NaN,
    p50Ms: result.p50Us / 1000,
    p99Ms: result.p99Us / 1000,
    serverCpu,
    genCpu,
    otherCpu: Math.max(0, busyCores(machine[0], machine[1], cores) - serverCpu - genCpu),
    timeToAllMs: NaN,
    rssPerConnKiB: NaN,
    heapPerConnKiB: NaN,
    extensions: result.extensions,
    error: result.error
  }
}

/** A sample that measured nothing, with the reason. */
export function failedSample (error: string): Sample {
  return { msgsPerSec: NaN, mbPerSec: NaN, p50Ms: NaN, p99Ms: NaN, serverCpu: NaN, genCpu: NaN, otherCpu: NaN, timeToAllMs: NaN, rssPerConnKiB: NaN, heapPerConnKiB: NaN, extensions: '', error }
}

function share (start: ServerAnswer, end: ServerAnswer): number {
  const wallMs = (end.wallMs ?? 0) - (start.wallMs ?? 0)
  return wallMs > 0 ? (end.value - start.value) / 1000 / wallMs : NaN
}
