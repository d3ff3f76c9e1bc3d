import type { TargetProcess } from './target.js'

export const KiB = 1024
export const MiB = 1024 * 1024

/** What a scenario gets to work with. */
export interface Context {
  target: TargetProcess
  /** The echo route. */
  path: string
  /** 1 for a full run, 0.1 with --quick. */
  scale: number
  /** Connections the harness itself may hold at once (its `ulimit -n` minus headroom). */
  maxConnections: number
}

/** A scenario's own figures, and what broke its bounds (empty: ok). */
export interface Outcome {
  figures: string
  failures: string[]
}

/** One hostile or heavy workload, and the server-side bounds it must stay within. */
export interface Scenario {
  name: string
  /** What it does, for --help and the README. */
  summary: string
  /** Run the server with permessage-deflate (COMPRESSION=1). */
  compression?: boolean
  /** Largest allowed growth of the server's VmRSS at any time during the run (sampled every 50 ms). */
  peakRssBound?: number | ((context: Context) => number)
  /** Largest allowed growth of the server's RSS after the run, once the server collected garbage. */
  afterGcRssBound?: number
  /** Largest allowed growth of the server's JS heap in use after the run and a GC (what a leak of JS objects shows in). */
  afterGcHeapBound?: number
  run: (context: Context) => Promise<Outcome>
}

/** `count` scaled for the run, at least `min`. */
export function scaled (context: Context, count: number, min = 1): number {
  return Math.max(min, Math.round(count * context.scale))
}

/** Bytes as "+12.3 MiB". */
export function mib (bytes: number, signed = true): string {
  const text = (bytes / MiB).toFixed(1)
  return signed && bytes >= 0 ? `+${text} MiB` : `${text} MiB`
}

/** Milliseconds as "1.23 s" or "456 ms". */
export function duration (ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`
}

/** A count with thousands separators. */
export function n (count: number): string {
  return count.toLocaleString('en-US')
}

/** "3×1002, 1×1007" from a tally of outcomes. */
export function tally (counts: Map<string, number>): string {
  return [...counts].sort((a, b) => b[1] - a[1]).map(([what, count]) => `${n(count)}×${what}`).join(', ') || 'none'
}

/** Adds one to `key` in `counts`. */
export function bump (counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}
