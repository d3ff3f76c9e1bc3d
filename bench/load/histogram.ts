const EXACT = 1024
const SUB_BITS = 7
const SUB = 1 << SUB_BITS
const MAX_EXPONENT = 31
const SIZE = EXACT + (MAX_EXPONENT - 10) * SUB

/**
 * A latency histogram in whole microseconds that never allocates while recording: exact below
 * 1024 µs, then 128 buckets per power of two (under 1 % error), up to about 35 minutes.
 */
export class Histogram {
  readonly #counts = new Float64Array(SIZE)
  count = 0

  record (micros: number): void {
    const v = micros <= 0 ? 0 : micros >= 0x7fffffff ? 0x7fffffff : Math.floor(micros)
    this.#counts[bucketOf(v)]++
    this.count++
  }

  reset (): void {
    this.#counts.fill(0)
    this.count = 0
  }

  /** The value (µs, bucket midpoint) below which `fraction` of the recorded values lie; 0 when empty. */
  percentile (fraction: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(fraction * this.count))
    let seen = 0
    for (let i = 0; i < SIZE; i++) {
      seen += this.#counts[i]!
      if (seen >= rank) return valueOf(i)
    }
    return valueOf(SIZE - 1)
  }
}

function bucketOf (v: number): number {
  if (v < EXACT) return v
  const exponent = 31 - Math.clz32(v)
  return EXACT + (exponent - 10) * SUB + ((v >>> (exponent - SUB_BITS)) & (SUB - 1))
}

function valueOf (bucket: number): number {
  if (bucket < EXACT) return bucket
  const exponent = 10 + Math.floor((bucket - EXACT) / SUB)
  const step = 1 << (exponent - SUB_BITS)
  return (SUB + ((bucket - EXACT) % SUB)) * step + step / 2
}
