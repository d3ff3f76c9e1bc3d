import { ProtocolError, ReadLimitError } from '../protocol/errors.js'
import { Utf8Validator } from '../protocol/utf8.js'
import type { ZlibLimiter } from './limiter.js'
import { ZlibContext, inflateKey, sharedContexts } from './zlib-context.js'

/**
 * Where the inflated bytes of one message go, in order; nothing is called after `onEnd` or
 * `onError`. The callbacks run either synchronously inside `MessageInflation.write`/`end` (small
 * input, nothing of this connection queued before it) or later inside zlib's stream events; they
 * must not throw.
 */
export interface InflateTarget {
  /** The next inflated bytes of the message (never empty). */
  onData (chunk: Buffer): void
  /** The message ended and all of it was delivered. */
  onEnd (): void
  /**
   * Inflation failed: ReadLimitError (1009, ERR_WS_READ_LIMIT) past the read limit, ProtocolError
   * 1007 for corrupt compressed data (ERR_WS_INVALID_COMPRESSED_DATA) or, in text, invalid UTF-8
   * (ERR_WS_INVALID_UTF8). Nothing more comes for this connection's later messages.
   */
  onError (error: ProtocolError): void
  /** `bytes` of compressed input given to `write` were consumed, for read flow control. */
  onConsumed? (bytes: number): void
}

/** The compressed frames of one incoming message, fed as they arrive. */
export interface MessageInflation {
  /** Queues the next compressed payload piece; the codec keeps the buffer until zlib consumed it. */
  write (piece: Buffer): void
  /** Marks the end of the message (its final frame ended). */
  end (): void
}

/** What a Decompressor is built from. */
export interface DecompressorSettings {
  /** zlib window bits, 9..15. */
  windowBits: number
  /** Whether the peer resets its context after every message (so this side may too). */
  noContextTakeover: boolean
  /** The read limit in bytes, read at every check; 0 = none. */
  readLimit: () => number
  /** Largest compressed piece inflated on the calling thread; 0 = never. */
  syncLimit: number
  limiter: ZlibLimiter
}

/** RFC 7692 §7.2.2: the sender removed it, the receiver appends it back. */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])
/**
 * A sync step stops after producing this many times `syncLimit` bytes, so a small frame that
 * inflates to megabytes blocks the event loop about as long as compressing `syncLimit` bytes of
 * chatty JSON would (measured: inflating yields some 600 B/µs, level 3 compresses 50-700 B/µs);
 * the rest goes to the threadpool.
 */
const SYNC_OUTPUT_FACTOR = 8

class Inflation {
  readonly target: InflateTarget
  readonly utf8: Utf8Validator | undefined
  readonly pieces: Buffer[] = []
  ended = false
  produced = 0
  context: ZlibContext | undefined

  constructor (target: InflateTarget, text: boolean) {
    this.target = target
    this.utf8 = text ? new Utf8Validator() : undefined
  }
}

/**
 * The receiving half of permessage-deflate for one connection. Messages are inflated one after
 * the other, piece by piece as their frames arrive, and the read limit is enforced on the output as
 * it is produced: a small frame that would inflate to gigabytes stops after at most the read limit
 * plus one zlib chunk (16 KiB). A piece of at most `syncLimit` bytes that waits for nothing earlier
 * is inflated on the calling thread, its callbacks run before `write`/`end` returns; the others go
 * to the threadpool in order. Without context takeover a context is borrowed from the process-wide
 * pool for each message; with it the connection owns one from its first compressed message on.
 */
export class Decompressor {
  readonly windowBits: number
  readonly noContextTakeover: boolean
  readonly #readLimit: () => number
  readonly #syncLimit: number
  readonly #limiter: ZlibLimiter
  readonly #queue: Inflation[] = []
  #own: ZlibContext | undefined
  #running = false
  #failure: ProtocolError | undefined
  #closed = false

  constructor (settings: DecompressorSettings) {
    this.windowBits = settings.windowBits
    this.noContextTakeover = settings.noContextTakeover
    this.#readLimit = settings.readLimit
    this.#syncLimit = settings.syncLimit
    this.#limiter = settings.limiter
  }

  /** Whether this connection holds a zlib context of its own right now. */
  get hasContext (): boolean {
    return this.#own !== undefined
  }

  /**
   * Starts one incoming message; its output goes to `target` after every message started before
   * has ended. With `text` the output is also checked for UTF-8 (failing with 1007).
   */
  inflate (target: InflateTarget, text = false): MessageInflation {
    const inflation = new Inflation(target, text)
    this.#queue.push(inflation)
    return {
      write: (piece) => {
        if (this.#syncLimit > 0 && piece.length <= this.#syncLimit && this.#trySync(inflation, piece)) return
        inflation.pieces.push(piece)
        this.#run()
      },
      end: () => {
        inflation.ended = true
        if (this.#syncLimit > 0 && this.#trySync(inflation, undefined)) return
        this.#run()
      }
    }
  }

  /** Frees every context; queued messages are dropped and their targets are not called again. */
  close (): void {
    this.#closed = true
    for (const inflation of this.#queue.splice(0)) inflation.context?.close()
    this.#own?.close()
    this.#own = undefined
  }

  #run (): void {
    if (this.#running) return
    this.#running = true
    this.#drain()
  }

  /** Works through the queue until it waits for input; `#running` drops in the same tick it stops. */
  async #drain (): Promise<void> {
    for (;;) {
      const inflation = this.#queue[0]
      if (inflation === undefined || this.#closed) break
      if (this.#failure !== undefined) {
        this.#queue.shift()
        inflation.target.onError(this.#failure)
        continue
      }
      const piece = inflation.pieces.shift()
      if (piece === undefined && !inflation.ended) break
      if (await this.#step(inflation, piece)) this.#queue.shift()
    }
    this.#running = false
  }

  /**
   * Runs the next step of `inflation` on this thread when nothing may run before it: it heads the
   * queue, has no piece waiting and no job of this connection is under way. False leaves the step
   * to the queue.
   */
  #trySync (inflation: Inflation, piece: Buffer | undefined): boolean {
    if (this.#running || this.#queue[0] !== inflation || inflation.pieces.length > 0 || this.#closed || this.#failure !== undefined) return false
    const context = inflation.context ??= this.#take()
    if (!context.canProcessSync) return false
    // Callbacks that start or feed messages meanwhile must queue behind this step.
    this.#running = true
    // A callback may have closed the decompressor, which empties the queue.
    if (this.#stepSync(inflation, context, piece) && this.#queue[0] === inflation) this.#queue.shift()
    this.#running = false
    const next = this.#queue[0]
    if (next !== undefined && (next.pieces.length > 0 || next.ended || this.#failure !== undefined)) this.#run()
    return true
  }

  /** `#step` on this thread; a piece whose output outgrows the sync bound goes on in the queue. */
  #stepSync (inflation: Inflation, context: ZlibContext, piece: Buffer | undefined): boolean {
    let rest: Buffer | undefined
    try {
      // The 4-byte tail yields at most a few KiB: only pieces need the bound.
      rest = context.processSync(piece ?? TAIL, this.#sink(inflation, context), piece === undefined ? Infinity : this.#syncLimit * SYNC_OUTPUT_FACTOR)
    } catch (error) {
      return this.#failed(inflation, error as Error)
    }
    if (rest === undefined) return this.#stepped(inflation, piece)
    const consumed = piece!.length - rest.length
    if (consumed > 0) inflation.target.onConsumed?.(consumed)
    inflation.pieces.unshift(rest)
    return false
  }

  /** Inflates one piece (or, with none, the end of the message); true when the message is over. */
  async #step (inflation: Inflation, piece: Buffer | undefined): Promise<boolean> {
    const context = inflation.context ??= this.#take()
    try {
      await this.#limiter.run(() => context.process(piece ?? TAIL, true, this.#sink(inflation, context)))
    } catch (error) {
      return this.#failed(inflation, error as Error)
    }
    return this.#stepped(inflation, piece)
  }

  /** Where a step's output goes: checked against the read limit and UTF-8, then to the target. */
  #sink (inflation: Inflation, context: ZlibContext): (chunk: Buffer) => void {
    const limit = this.#readLimit()
    return (chunk) => {
      inflation.produced += chunk.length
      if (limit > 0 && inflation.produced > limit) {
        context.abort(new ReadLimitError(`inflated message of more than ${limit} bytes`))
      } else if (inflation.utf8 !== undefined && !inflation.utf8.push(chunk)) {
        context.abort(new ProtocolError('invalid UTF-8 in text message', 1007, 'ERR_WS_INVALID_UTF8'))
      } else {
        inflation.target.onData(chunk)
      }
    }
  }

  /** A step failed: the message and every later one of this connection fail with 1007 or 1009. */
  #failed (inflation: Inflation, error: Error): boolean {
    this.#putBack(inflation)
    if (this.#closed) return true
    this.#failure = error instanceof ProtocolError ? error : new ProtocolError(`invalid compressed data: ${error.message}`, 1007, 'ERR_WS_INVALID_COMPRESSED_DATA')
    inflation.target.onError(this.#failure)
    return true
  }

  /** A step succeeded: reports the piece consumed, or ends the message; true when it is over. */
  #stepped (inflation: Inflation, piece: Buffer | undefined): boolean {
    const target = inflation.target
    if (piece !== undefined) {
      target.onConsumed?.(piece.length)
      return false
    }
    this.#putBack(inflation)
    if (inflation.utf8 !== undefined && !inflation.utf8.end()) {
      this.#failure = new ProtocolError('text message ends inside a UTF-8 character', 1007, 'ERR_WS_INVALID_UTF8')
      target.onError(this.#failure)
      return true
    }
    target.onEnd()
    return true
  }

  #take (): ZlibContext {
    if (this.noContextTakeover) return sharedContexts.take(inflateKey(this.windowBits), () => ZlibContext.inflate(this.windowBits))
    this.#own ??= ZlibContext.inflate(this.windowBits)
    return this.#own
  }

  /** A message ended or failed: a borrowed context goes back to the pool, an own broken one is dropped. */
  #putBack (inflation: Inflation): void {
    const context = inflation.context!
    inflation.context = undefined
    if (this.noContextTakeover) {
      if (this.#closed) context.close()
      else sharedContexts.give(context)
      return
    }
    // After a final block (BFINAL) zlib ignores all input, so the next message needs a new context.
    if (context.broken || context.finished) {
      context.close()
      if (this.#own === context) this.#own = undefined
    }
  }
}
