import { performance } from 'node:perf_hooks'
import type { GeneratorEvent } from '../shared/messages.js'

/** Tells the runner about the measured window (so it can sample the server's CPU) and times the generator's own CPU. */
export class Window {
  #cpuStart = 0
  #wallStart = 0
  cpuShare = 0
  seconds = 0
  readonly #emit: (event: GeneratorEvent) => void

  constructor (emit: (event: GeneratorEvent) => void) {
    this.#emit = emit
  }

  start (): void {
    this.#emit({ event: 'window-start' })
    const { user, system } = process.cpuUsage()
    this.#cpuStart = user + system
    this.#wallStart = performance.now()
  }

  end (): void {
    const { user, system } = process.cpuUsage()
    const wallMs = performance.now() - this.#wallStart
    this.seconds = wallMs / 1000
    this.cpuShare = wallMs > 0 ? (user + system - this.#cpuStart) / 1000 / wallMs : 0
    this.#emit({ event: 'window-end' })
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Lets the load run unmeasured for `warmupMs`, then measures `durationMs`: `setRecording(true)` and a
 * fresh histogram exactly for the window, whose wall time and CPU share the returned Window holds.
 */
export async function measureWindow (
  emit: (event: GeneratorEvent) => void,
  timing: { warmupMs: number, durationMs: number },
  histogram: { reset: () => void },
  setRecording: (on: boolean) => void
): Promise<Window> {
  const window = new Window(emit)
  await sleep(timing.warmupMs)
  setRecording(true)
  histogram.reset()
  window.start()
  await sleep(timing.durationMs)
  window.end()
  setRecording(false)
  return window
}
