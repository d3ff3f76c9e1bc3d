import type { JobResult } from '../shared/messages.js'

/** A result with nothing measured yet. */
export function emptyResult (): JobResult {
  return { messages: 0, seconds: 0, payloadBytes: 0, p50Us: 0, p99Us: 0, genCpu: 0, extensions: '', timeToAllMs: [], opened: 0 }
}
