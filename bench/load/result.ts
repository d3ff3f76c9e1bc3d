import type { JobResult } from '../shared/messages.js'
import type { Histogram } from './histogram.js'

/** A result with nothing measured yet. */
export function emptyResult (): JobResult {
  return { messages: 0, seconds: 0, payloadBytes: 0, p50Us: 0, p99Us: 0, genCpu: 0, extensions: '', timeToAllMs: [], opened: 0 }
}

/**
 * The result of a load measured over a window: `messages` of `size` bytes each, the latency
 * percentiles of `histogram`, and the generator's share of its core.
 */
export function windowResult (window: { seconds: number, cpuShare: number }, histogram: Histogram, messages: number, size: number, error: string | undefined): JobResult {
  return {
    ...emptyResult(),
    messages,
    seconds: window.seconds,
    payloadBytes: messages * size,
    p50Us: histogram.percentile(0.5),
    p99Us: histogram.percentile(0.99),
    genCpu: window.cpuShare,
    error
  }
}
