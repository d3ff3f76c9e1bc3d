/** Nanoseconds taken by `iterations` calls of `op`. */
export function timeOps (op: () => void, iterations: number): number {
  const start = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) op()
  return Number(process.hrtime.bigint() - start)
}

/**
 * The number of calls of `op` that takes at least `targetMs`, found by doubling. The doubling runs
 * `op` for about twice `targetMs` in all, which is also its warm-up.
 */
export function calibrate (op: () => void, targetMs: number): number {
  let iterations = 1
  while (timeOps(op, iterations) < targetMs * 1e6) iterations *= 2
  return iterations
}

/** GB/s (10^9 bytes per second) of `iterations` calls of `op` on `bytes` bytes each. */
export function throughput (op: () => void, iterations: number, bytes: number): number {
  return (bytes * iterations) / timeOps(op, iterations)
}
