import type { ServerKind } from '../shared/messages.js'
import type { Sample } from './measure.js'
import type { Scenario } from './scenarios.js'

/** Medians over the rounds of one server in one scenario: a Sample's fields, plus how many rounds. */
export interface Summary extends Sample {
  rounds: number
}

/** All samples of one scenario, per server, plus how each server was built. */
export interface ScenarioRun {
  scenario: Scenario
  samples: Map<ServerKind, Sample[]>
  impl: Map<ServerKind, string>
}

/** The median of the finite values, NaN when there are none. */
export function median (values: number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (finite.length === 0) return NaN
  const mid = finite.length >> 1
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

/** Medians of every metric over the samples that measured something. */
export function summarize (samples: Sample[]): Summary {
  const measured = samples.filter((s) => s.na === undefined)
  const errors = [...new Set(samples.map((s) => s.error).filter((e) => e !== undefined))]
  const pick = (f: (s: Sample) => number): number => median(measured.map(f))
  return {
    rounds: measured.length,
    msgsPerSec: pick((s) => s.msgsPerSec),
    mbPerSec: pick((s) => s.mbPerSec),
    p50Ms: pick((s) => s.p50Ms),
    p99Ms: pick((s) => s.p99Ms),
    serverCpu: pick((s) => s.serverCpu),
    genCpu: pick((s) => s.genCpu),
    otherCpu: pick((s) => s.otherCpu),
    timeToAllMs: pick((s) => s.timeToAllMs),
    rssPerConnKiB: pick((s) => s.rssPerConnKiB),
    heapPerConnKiB: pick((s) => s.heapPerConnKiB),
    extensions: samples[0]?.extensions ?? '',
    na: measured.length === 0 ? samples[0]?.na : undefined,
    error: errors.length > 0 ? errors.join('; ') : undefined
  }
}

/** The number a scenario's ratios and targets compare. */
export function primary (summary: Summary | undefined, scenario: Scenario): number {
  if (summary === undefined || summary.na !== undefined) return NaN
  return scenario.metric === 'rss' ? summary.rssPerConnKiB : summary.msgsPerSec
}

/** Ours (through a route unless `ours` says otherwise) divided by another server, NaN when either is missing. */
export function ratio (run: ScenarioRun, other: ServerKind, ours: ServerKind = 'wsconn'): number {
  const mine = primary(summaryOf(run, ours), run.scenario)
  const theirs = primary(summaryOf(run, other), run.scenario)
  return mine / theirs
}

export function summaryOf (run: ScenarioRun, kind: ServerKind): Summary | undefined {
  const samples = run.samples.get(kind)
  return samples === undefined || samples.length === 0 ? undefined : summarize(samples)
}

/** 'met', 'MISSED' or 'n/a' for the scenario's target, for ours through a route unless `ours` says otherwise. */
export function targetStatus (run: ScenarioRun, ours: ServerKind = 'wsconn'): string {
  const target = run.scenario.target
  if (target === undefined) return ''
  const r = ratio(run, target.against, ours)
  if (!Number.isFinite(r)) return 'n/a'
  const ok = (target.min === undefined || r >= target.min) && (target.max === undefined || r <= target.max)
  return ok ? 'met' : 'MISSED'
}
