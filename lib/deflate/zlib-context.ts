import { constants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib'
import { canWriteSync, writeSync, type SyncResult } from './zlib-sync.js'

/** Settings of a raw-deflate compressor; contexts with equal settings are interchangeable once reset. */
export interface DeflateSettings {
  level: number
  memLevel: number
  /** zlib window bits, 9..15 (RFC 7692's 8 already raised to 9). */
  windowBits: number
}

/**
 * One zlib stream (raw deflate or raw inflate) driven one job at a time: `process` feeds input and
 * resolves once zlib consumed it and emitted all the output it yields, handing every output chunk
 * to the job's sink as it appears, so a sink can stop a job in the middle (`abort`). The work runs
 * on the libuv threadpool in `chunkSize` steps: the event loop is never blocked, whatever the size.
 * `processSync` does the same job on the calling thread, for small inputs; the owner must never
 * start one while a `process` job is running (Node aborts the process on overlapping writes).
 * Errors never escape as 'error' events: they reject (or throw from) the job, and the context is
 * then broken.
 */
export class ZlibContext {
  readonly stream: DeflateRaw | InflateRaw
  /** The pool key of its settings: contexts with equal keys are interchangeable once reset. */
  readonly key: string
  readonly #deflate: boolean
  #sink: ((chunk: Buffer) => void) | undefined
  #settle: ((error?: Error) => void) | undefined
  #broken = false
  /** Input bytes handed to zlib since the last reset, and zlib's consumed count at that reset. */
  #fed = 0
  #consumedAtReset = 0
  /** Input consumed by sync jobs, which bypass the stream and so its `bytesWritten`. */
  #consumedSync = 0

  private constructor (stream: DeflateRaw | InflateRaw, key: string, deflate: boolean) {
    this.stream = stream
    this.key = key
    this.#deflate = deflate
    stream.on('data', (chunk: Buffer) => { this.#sink?.(chunk) })
    stream.on('error', (error: Error) => { this.#fail(error) })
  }

  /** A raw-deflate context; each job's output ends on a sync-flush boundary when asked. */
  static deflate (settings: DeflateSettings): ZlibContext {
    return new ZlibContext(createDeflateRaw({
      level: settings.level,
      memLevel: settings.memLevel,
      windowBits: settings.windowBits
    }), deflateKey(settings), true)
  }

  /** A raw-inflate context that flushes all the output it can on every write. */
  static inflate (windowBits: number): ZlibContext {
    return new ZlibContext(createInflateRaw({ windowBits, flush: constants.Z_SYNC_FLUSH }), inflateKey(windowBits), false)
  }

  /** Whether an error or `abort` made this context unusable. */
  get broken (): boolean {
    return this.#broken
  }

  /**
   * Whether an inflate context met a final block (BFINAL): zlib then ignores all further input,
   * so the context must not be used for another message.
   */
  get finished (): boolean {
    return this.#consumed() - this.#consumedAtReset < this.#fed
  }

  /** Whether `processSync` can run on this runtime (Node's undocumented sync entry is there). */
  get canProcessSync (): boolean {
    return canWriteSync(this.stream)
  }

  /**
   * Feeds `input` (deflate: then a sync flush when `flush`) and resolves once zlib has consumed it
   * and `sink` has seen all the output; rejects when zlib fails or the job is aborted.
   */
  process (input: Buffer, flush: boolean, sink: (chunk: Buffer) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#sink = sink
      // Cleared on the first call, so a late callback of an aborted job settles nothing.
      this.#settle = (error) => {
        this.#sink = undefined
        this.#settle = undefined
        if (error === undefined) resolve()
        else reject(error)
      }
      const done = (error?: Error | null): void => { this.#settle?.(error ?? undefined) }
      this.#fed += input.length
      if (this.#deflate) {
        if (!flush) {
          this.stream.write(input, done)
          return
        }
        if (input.length > 0) this.stream.write(input)
        this.stream.flush(constants.Z_SYNC_FLUSH, done)
      } else {
        this.stream.write(input, done)
      }
    })
  }

  /**
   * The job of `process` (with a flush) run on the calling thread: `sink` sees every output chunk
   * before this returns. Throws what `process` would reject with; the context is then broken.
   * With `maxOutput` the job stops once more than that many bytes came out and zlib may have more
   * for this input: the input not consumed yet is returned (maybe empty, when only output is left),
   * to be fed next (`process` will do, on the threadpool). Undefined when the job is complete.
   * Only when `canProcessSync`, and never while a `process` job runs.
   */
  processSync (input: Buffer, sink: (chunk: Buffer) => void, maxOutput = Infinity): Buffer | undefined {
    if (this.#broken) throw new Error('zlib context closed')
    let failure: Error | undefined
    // `abort` or `close` from inside the sink lands here, and stops the job before zlib runs again.
    this.#settle = (error) => { failure = error }
    let result: SyncResult | Error | undefined
    try {
      result = writeSync(this.stream, input, (chunk) => {
        sink(chunk)
        return failure === undefined
      }, maxOutput)
      if (result instanceof Error) this.#fail(result)
    } catch (error) {
      // A sink that threw left the job half done: the history no longer matches the peer's.
      this.#fail(error as Error)
    }
    this.#settle = undefined
    if (failure !== undefined) throw failure
    const { consumed, stopped } = result as SyncResult
    this.#consumedSync += consumed
    if (!stopped) {
      this.#fed += input.length
      return undefined
    }
    this.#fed += consumed
    return input.subarray(consumed)
  }

  /** Stops the running job with `error`, which its promise rejects with; the context is broken. */
  abort (error: Error): void {
    this.#fail(error)
  }

  /** Forgets the compression history so the next job starts a fresh stream (keeps the memory). */
  reset (): void {
    this.stream.reset()
    this.#fed = 0
    this.#consumedAtReset = this.#consumed()
  }

  /** Frees the native context; a running job rejects. */
  close (): void {
    this.#fail(new Error('zlib context closed'))
  }

  #consumed (): number {
    return this.stream.bytesWritten + this.#consumedSync
  }

  #fail (error: Error): void {
    if (!this.#broken) {
      this.#broken = true
      this.stream.destroy()
    }
    this.#settle?.(error)
  }
}

/**
 * Idle contexts kept for reuse, by settings. Only contexts whose history is reset after every
 * message go here (no_context_takeover and standalone compression), so any connection with the
 * same settings can borrow one: such connections cost no zlib memory while they are idle.
 */
export class ContextPool {
  readonly #idle = new Map<string, ZlibContext[]>()
  readonly #maxIdle: number

  constructor (maxIdle: number) {
    this.#maxIdle = maxIdle
  }

  /** A reset context for `key`, reused when one is idle, else made by `create`. */
  take (key: string, create: () => ZlibContext): ZlibContext {
    const idle = this.#idle.get(key)
    const context = idle?.pop()
    if (idle !== undefined && idle.length === 0) this.#idle.delete(key)
    return context ?? create()
  }

  /** Takes back a context after a job; it is reset and kept, or closed when broken or over the idle bound. */
  give (context: ZlibContext): void {
    const key = context.key
    if (context.broken || context.finished) {
      context.close()
      return
    }
    let idle = this.#idle.get(key)
    if (idle === undefined) {
      idle = []
      this.#idle.set(key, idle)
    }
    if (idle.length >= this.#maxIdle) {
      context.close()
      return
    }
    context.reset()
    idle.push(context)
  }

  /** Idle contexts held now, over all settings. */
  get size (): number {
    let count = 0
    for (const idle of this.#idle.values()) count += idle.length
    return count
  }

  /** Closes every idle context (they are made again on demand). */
  clear (): void {
    for (const idle of this.#idle.values()) for (const context of idle) context.close()
    this.#idle.clear()
  }
}

/** The process-wide pool of shared contexts; at most 10 idle ones per setting, like the zlib concurrency. */
export const sharedContexts = new ContextPool(10)

/** Pool key of a deflate context with these settings. */
export function deflateKey (settings: DeflateSettings): string {
  return `deflate:${settings.level}:${settings.memLevel}:${settings.windowBits}`
}

/** Pool key of an inflate context with this window. */
export function inflateKey (windowBits: number): string {
  return `inflate:${windowBits}`
}
