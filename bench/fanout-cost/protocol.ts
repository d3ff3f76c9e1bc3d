/** The servers compared: a raw TCP write loop, a `ws` loop of `send`, and ours through a Hub. */
export type CostKind = 'tcp' | 'ws' | 'ours'

/** The size of every message, as in scenario (f). */
export const PAYLOAD_SIZE = 1024

/** What the runner asks: send a burst (and report CPU time right after it is handed over), or report CPU time. */
export type CostCommand = { op: 'go', burst: number } | { op: 'cpu' }

/** The server's CPU time so far (process.cpuUsage) and its connection count. */
export interface CostReply { connections: number, userUs: number, systemUs: number }
