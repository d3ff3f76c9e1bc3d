import { readFileSync, writeFileSync } from 'node:fs'

const SAMPLE_MS = 50

/**
 * The highest VmRSS of a process over a span: from the kernel's VmHWM, reset at the start through
 * /proc/<pid>/clear_refs, so even a spike between samples counts; where the reset is not allowed,
 * from samples every 50 ms.
 */
export class PeakRss {
  readonly #pid: number
  readonly #hwm: boolean
  readonly #timer: NodeJS.Timeout
  #peak = 0

  constructor (pid: number) {
    this.#pid = pid
    this.#hwm = resetHighWaterMark(pid)
    this.#timer = setInterval(() => { this.#sample() }, SAMPLE_MS)
    this.#sample()
  }

  /** Stops sampling and returns the peak in bytes; `how` says which method measured it. */
  stop (): { peak: number, how: 'VmHWM' | 'sampled' } {
    clearInterval(this.#timer)
    this.#sample()
    return { peak: this.#peak, how: this.#hwm ? 'VmHWM' : 'sampled' }
  }

  #sample (): void {
    let status: string
    try {
      status = readFileSync(`/proc/${this.#pid}/status`, 'utf8')
    } catch {
      return // the process is gone; the harness reports that
    }
    const field = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
    this.#peak = Math.max(this.#peak, field('VmRSS'), this.#hwm ? field('VmHWM') : 0)
  }
}

function resetHighWaterMark (pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}
