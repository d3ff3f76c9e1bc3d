import { readFileSync } from 'node:fs'

/** Cumulative CPU time of the whole machine (all cores), in clock ticks, from /proc/stat. */
export interface SystemTimes {
  busy: number
  total: number
}

/** The machine's CPU counters now, or undefined where /proc/stat does not exist. */
export function systemTimes (): SystemTimes | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[]
    const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0)
    return { busy, total: busy + idle! + iowait! }
  } catch {
    return undefined
  }
}

/** Cores' worth of CPU the whole machine used between two readings (2 = two cores busy). */
export function busyCores (start: SystemTimes | undefined, end: SystemTimes | undefined, cores: number): number {
  if (start === undefined || end === undefined || end.total <= start.total) return NaN
  return (end.busy - start.busy) / (end.total - start.total) * cores
}
