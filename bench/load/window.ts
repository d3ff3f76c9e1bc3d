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
