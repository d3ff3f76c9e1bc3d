/**
 * How many zlib jobs the process runs at once when nobody says otherwise. Like ws: each job takes a
 * libuv threadpool thread and a burst of native allocations, and thousands of connections
 * compressing at the same moment fragment the C heap badly (ws#1202, node#8871).
 */
export const DEFAULT_ZLIB_CONCURRENCY = 10

/**
 * Runs async jobs with at most `concurrency` of them in flight; the others wait in call order.
 * A job that throws or rejects frees its slot like one that succeeds.
 */
export class ZlibLimiter {
  #concurrency: number
  #active = 0
  readonly #waiting: Array<() => void> = []

  constructor (concurrency = DEFAULT_ZLIB_CONCURRENCY) {
    this.#concurrency = checkConcurrency(concurrency)
  }

  /** The most jobs run at once; raising it starts waiting jobs at once. */
  get concurrency (): number {
    return this.#concurrency
  }

  set concurrency (value: number) {
    this.#concurrency = checkConcurrency(value)
    this.#startWaiting()
  }

  /** Jobs running now. */
  get active (): number {
    return this.#active
  }

  /** Jobs waiting for a slot. */
  get pending (): number {
    return this.#waiting.length
  }

  /** Runs `job` once a slot is free and settles like it. */
  run<T> (job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.#active++
        let result: Promise<T>
        try {
          result = job()
        } catch (error) {
          result = Promise.reject(error)
        }
        // The slot is free before the caller hears of the result.
        result.then((value) => {
          this.#release()
          resolve(value)
        }, (error: unknown) => {
          this.#release()
          reject(error)
        })
      }
      if (this.#active < this.#concurrency && this.#waiting.length === 0) start()
      else this.#waiting.push(start)
    })
  }

  #release (): void {
    this.#active--
    this.#startWaiting()
  }

  #startWaiting (): void {
    while (this.#active < this.#concurrency && this.#waiting.length > 0) this.#waiting.shift()!()
  }
}

/** The limiter every PerMessageDeflate of the process shares unless given its own. */
export const zlibLimiter = new ZlibLimiter()

/** Changes how many zlib jobs the whole process runs at once (default 10). */
export function setZlibConcurrency (concurrency: number): void {
  zlibLimiter.concurrency = concurrency
}

function checkConcurrency (value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`websocket: zlib concurrency must be an integer >= 1, got ${String(value)}`)
  }
  return value
}
