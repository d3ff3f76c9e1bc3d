import { count, fixed, ms, percent, times } from '../runner/format.js'
import type { Sample } from '../runner/measure.js'
import { summarize, type Summary } from '../runner/stats.js'
import type { Http2Scenario } from './scenarios.js'

/** Every sample of one scenario, per variant label, in the scenario's variant order. */
export interface Http2Run {
  scenario: Http2Scenario
  samples: Map<string, Sample[]>
}

/** One variant against HTTP/1.1 in one scenario: rate ÷ rate, and per server CPU-second ÷ the same. */
export interface Http2Ratio {
  letter: string
  label: string
  rate: number
  perCpuSecond: number
}

const COLUMNS = ['scenario', 'protocol', 'rate', 'per server CPU-s', 'MB/s', 'p50 ms', 'p99 ms', 'server CPU', 'gen CPU', 'other CPU', 'note']

/** Messages (or handshakes) per second of the server's CPU: steadier than the rate on a shared machine. */
function perCpuSecond (m: Summary): number {
  return m.msgsPerSec / m.serverCpu
}

/** The rows of every run, in the column order of COLUMNS; the scenario is named on its first row. */
export function rows (runs: Http2Run[]): string[][] {
  const out: string[][] = []
  for (const run of runs) {
    for (const [i, [label, samples]] of [...run.samples].entries()) {
      const m = summarize(samples)
      const name = i === 0 ? `(${run.scenario.letter}) ${run.scenario.title}` : ''
      const note = m.error === undefined ? '' : `error: ${m.error}`
      if (m.rounds === 0 || !Number.isFinite(m.msgsPerSec)) {
        out.push([name, label, 'not measured', ...Array<string>(COLUMNS.length - 4).fill(''), note])
        continue
      }
      out.push([
        name, label, `${count(m.msgsPerSec)} ${run.scenario.unit}`, count(perCpuSecond(m)), fixed(m.mbPerSec, m.mbPerSec < 10 ? 2 : 1),
        ms(m.p50Ms), ms(m.p99Ms), percent(m.serverCpu), percent(m.genCpu), percent(m.otherCpu), note
      ])
    }
  }
  return out
}

/** Each HTTP/2 variant ÷ the scenario's HTTP/1.1 row (its first variant). */
export function ratios (runs: Http2Run[]): Http2Ratio[] {
  const out: Http2Ratio[] = []
  for (const run of runs) {
    const [base, ...others] = run.scenario.variants
    const baseSummary = summarize(run.samples.get(base!.label) ?? [])
    for (const variant of others) {
      const m = summarize(run.samples.get(variant.label) ?? [])
      out.push({ letter: run.scenario.letter, label: variant.label, rate: m.msgsPerSec / baseSummary.msgsPerSec, perCpuSecond: perCpuSecond(m) / perCpuSecond(baseSummary) })
    }
  }
  return out
}

/** The ratios as lines: "(a) HTTP/2, one session ÷ HTTP/1.1: 0.91× msgs/s, 0.95× per server CPU-second". */
export function ratioLines (runs: Http2Run[]): string[] {
  return ratios(runs).map((r) => {
    const unit = runs.find((run) => run.scenario.letter === r.letter)!.scenario.unit
    return `(${r.letter}) ${r.label} ÷ HTTP/1.1: ${times(r.rate)} ${unit}, ${times(r.perCpuSecond)} per server CPU-second`
  })
}

/** Aligned plain text for the terminal. */
export function textTable (table: string[][]): string {
  const all = [COLUMNS, ...table]
  const widths = COLUMNS.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  const numeric = (i: number): boolean => i > 1 && i < COLUMNS.length - 1
  return all.map((r) => '  ' + r.map((cell, i) => (numeric(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n')
}

export function markdownTable (table: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`
  return [line(COLUMNS), line(COLUMNS.map(() => '---')), ...table.map(line)].join('\n')
}
