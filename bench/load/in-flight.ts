import { performance } from 'node:perf_hooks'
import type { Histogram } from './histogram.js'

/**
 * The messages outstanding on every connection of an echo load: a ring of send times per
 * connection, matched in order to the echoes, whose latencies and count are recorded while
 * `recording` is on.
 */
export class InFlight {
  readonly histogram: Histogram
  recording = false
  /** Echoes received while recording. */
  messages = 0
  readonly #depth: number
  readonly #sentAt: Float64Array
  readonly #head: Int32Array

  constructor (connections: number, depth: number, histogram: Histogram) {
    this.#depth = depth
    this.#sentAt = new Float64Array(connections * depth)
    this.#head = new Int32Array(connections)
    this.histogram = histogram
  }

  /** Notes the send time of `count` messages just written on connection `slot`. */
  sent (slot: number, count: number): void {
    const now = performance.now()
    const depth = this.#depth
    const base = slot * depth
    const head = this.#head[slot]!
    for (let i = 0; i < count; i++) this.#sentAt[base + ((head + depth - count + i) % depth)] = now
  }

  /** Matches `count` echoes on connection `slot` to their sends; returns how many may go out again. */
  echoed (slot: number, count: number): number {
    const now = performance.now()
    const depth = this.#depth
    const base = slot * depth
    let head = this.#head[slot]!
    for (let i = 0; i < count; i++) {
      if (this.recording) this.histogram.record((now - this.#sentAt[base + head]!) * 1000)
      head = (head + 1) % depth
    }
    this.#head[slot] = head
    if (this.recording) this.messages += count
    return Math.min(count, depth)
  }
}
