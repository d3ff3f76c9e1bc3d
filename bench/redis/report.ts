import { count, fixed, ms, percent, times } from '../runner/format.js'
import { median } from '../runner/stats.js'
import type { FanoutSample } from './measure.js'
import { FANOUT_LABELS, type FanoutKind } from './protocol.js'

/** The measured numbers of a sample, each of which a summary gives as its median over the rounds. */
type FanoutNumbers = Omit<FanoutSample, 'impl' | 'error'>

// A Record of every number, so that a new field of FanoutSample that is not summarised fails to compile.
const MEDIANS = Object.keys({
  deliveriesPerSec: true, p50Ms: true, p99Ms: true, cpuA: true, cpuB: true, redisCpu: true, genCpu: true, otherCpu: true
} satisfies Record<keyof FanoutNumbers, true>) as Array<keyof FanoutNumbers>

/** Medians over the rounds of one implementation, and every error seen. */
export interface FanoutSummary extends FanoutNumbers {
  rounds: number
  /** Deliveries per second of CPU that both server processes and Redis used: robust against a busy machine. */
  perCpuSecond: number
  errors: string[]
}

/** The target: ours at least this many times Socket.IO's deliveries/s, at a lower p99. */
export const TARGET_RATIO = 3

export function summarizeFanout (samples: FanoutSample[]): FanoutSummary {
  const pick = (f: (s: FanoutSample) => number): number => median(samples.map(f))
  const medians = Object.fromEntries(MEDIANS.map((name) => [name, pick((s) => s[name])])) as Record<keyof FanoutNumbers, number>
  return {
    ...medians,
    rounds: samples.filter((s) => s.error === undefined).length,
    perCpuSecond: pick((s) => s.deliveriesPerSec / (s.cpuA + s.cpuB + (Number.isFinite(s.redisCpu) ? s.redisCpu : 0))),
    errors: [...new Set(samples.flatMap((s) => s.error === undefined ? [] : [s.error]))]
  }
}

/** Ours against Socket.IO: the deliveries/s ratio, the p99 ratio, and whether the target is met. */
export interface Comparison {
  throughput: number
  perCpuSecond: number
  p99: number
  status: 'met' | 'MISSED' | 'n/a'
}

export function compare (ours: FanoutSummary | undefined, socketIo: FanoutSummary | undefined): Comparison {
  const throughput = (ours?.deliveriesPerSec ?? NaN) / (socketIo?.deliveriesPerSec ?? NaN)
  const perCpuSecond = (ours?.perCpuSecond ?? NaN) / (socketIo?.perCpuSecond ?? NaN)
  const p99 = (ours?.p99Ms ?? NaN) / (socketIo?.p99Ms ?? NaN)
  if (!Number.isFinite(throughput) || !Number.isFinite(p99)) return { throughput, perCpuSecond, p99, status: 'n/a' }
  return { throughput, perCpuSecond, p99, status: throughput >= TARGET_RATIO && p99 < 1 ? 'met' : 'MISSED' }
}

const COLUMNS = ['server', 'deliveries/s', 'per CPU-s', 'MB/s', 'p50 ms', 'p99 ms', 'CPU A', 'CPU B', 'Redis CPU', 'gen CPU', 'other CPU', 'note']

/** One row per implementation, in the column order of COLUMNS. */
export function rows (summaries: Map<FanoutKind, FanoutSummary>, size: number): string[][] {
  return [...summaries].map(([kind, m]) => {
    const note = m.errors.length > 0 ? `error: ${m.errors.join('; ')}` : ''
    if (m.rounds === 0) return [FANOUT_LABELS[kind], 'not measured', ...Array<string>(COLUMNS.length - 3).fill(''), note]
    return [
      FANOUT_LABELS[kind], count(m.deliveriesPerSec), count(m.perCpuSecond), fixed(m.deliveriesPerSec * size / 1e6, 1), ms(m.p50Ms), ms(m.p99Ms),
      percent(m.cpuA), percent(m.cpuB), percent(m.redisCpu), percent(m.genCpu), percent(m.otherCpu), note
    ]
  })
}

/** The comparison as one sentence. */
export function comparisonText (c: Comparison): string {
  if (c.status === 'n/a') return `ours/Socket.IO: n/a (target ≥ ${TARGET_RATIO}× deliveries/s at a lower p99)`
  return `ours/Socket.IO: ${times(c.throughput)} deliveries/s, p99 ${times(c.p99)} (target ≥ ${TARGET_RATIO}× deliveries/s at a lower p99: ${c.status}); ${times(c.perCpuSecond)} deliveries per CPU-second`
}

/** Aligned plain text for the terminal. */
export function textTable (table: string[][]): string {
  const all = [COLUMNS, ...table]
  const widths = COLUMNS.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return all.map((r) => '  ' + r.map((cell, i) => (i === 0 || i === r.length - 1 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd()).join('\n')
}

export function markdownTable (table: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`
  return [line(COLUMNS), line(COLUMNS.map(() => '---')), ...table.map(line)].join('\n')
}
