import { WriteClosedError } from '../protocol/errors.js'
import type { ZlibLimiter } from './limiter.js'
import { checkLevel, checkMemLevel } from './options.js'
import { ZlibContext, deflateKey, sharedContexts, type DeflateSettings } from './zlib-context.js'

/**
 * The compression of one outgoing message, fed in pieces: each call resolves with the compressed
 * bytes that are ready (possibly none before `end`); `end` flushes and resolves with the rest,
 * the RFC 7692 tail `00 00 ff ff` already removed. Calls run in order.
 */
export interface MessageDeflation {
  /** Compresses the next piece of the message. */
  write (data: Buffer): Promise<Buffer>
  /** Compresses the last piece (or none) and ends the message. */
  end (data?: Buffer): Promise<Buffer>
  /** Gives up on the message (its frames were never sent); the compressor forgets its history. */
  abort (): void
}

/** What a Compressor is built from. */
export interface CompressorSettings {
  /** zlib window bits, 9..15. */
  windowBits: number
  /** Whether this side resets its context after every message. */
  noContextTakeover: boolean
  level: number
  memLevel: number
  /** Milliseconds idle before an own context is freed; 0 = never. */
  idleTimeout: number
  /** Largest message `compressSync` compresses on the calling thread; 0 = never. */
  syncLimit: number
  limiter: ZlibLimiter
}

const EMPTY = Buffer.alloc(0)
const TAIL_LENGTH = 4
/**
 * zlib emits nothing for a sync flush right after another one, so an empty message is written by
 * hand: an empty stored block, whose tail the receiver appends (RFC 7692 §7.2.3.6).
 */
const EMPTY_MESSAGE = [0x00]

/**
 * The sending half of permessage-deflate for one connection. Messages are compressed one after the
 * other in call order. Without context takeover it borrows a context from the process-wide pool for
 * each message, so an idle connection holds no zlib memory; with context takeover it owns one,
 * made on the first message and freed after `idleTimeout` without messages.
 */
export class Compressor {
  readonly windowBits: number
  readonly noContextTakeover: boolean
  #level: number
  readonly #memLevel: number
  readonly #idleTimeout: number
  readonly #syncLimit: number
  readonly #limiter: ZlibLimiter
  #own: ZlibContext | undefined
  #ownLevel = 0
  #idleTimer: NodeJS.Timeout | undefined
  #chain: Promise<void> = Promise.resolve()
  /** Messages (and history resets) on the chain that have not finished: a sync job must wait for none. */
  #pending = 0
  #closed = false

  constructor (settings: CompressorSettings) {
    this.windowBits = settings.windowBits
    this.noContextTakeover = settings.noContextTakeover
    this.#level = checkLevel(settings.level)
    this.#memLevel = checkMemLevel(settings.memLevel)
    this.#idleTimeout = settings.idleTimeout
    this.#syncLimit = settings.syncLimit
    this.#limiter = settings.limiter
  }

  /** The compression level of messages started from now on. */
  get level (): number {
    return this.#level
  }

  set level (level: number) {
    this.#level = checkLevel(level)
  }

  /** Whether this connection holds a zlib context of its own right now. */
  get hasContext (): boolean {
    return this.#own !== undefined
  }

  /** Compresses a whole message. */
  compress (data: Buffer): Promise<Buffer> {
    return this.start().end(data)
  }

  /**
   * Compresses a whole message on the calling thread, in order with the messages before it, and
   * returns the same bytes `compress` would; undefined when the caller must use `compress`: the
   * message is over `syncLimit`, an earlier message has not finished, the compressor is closed or
   * the runtime has no sync zlib entry (an empty message needs none: it is answered all the same).
   * Throws what `compress` would reject with.
   */
  compressSync (data: Buffer): Buffer | undefined {
    if (this.#syncLimit === 0 || data.length > this.#syncLimit || this.#pending > 0 || this.#closed) return undefined
    if (data.length === 0) return Buffer.from(EMPTY_MESSAGE)
    const context = this.#take(true)
    if (!context.canProcessSync) {
      this.#putBack(context, true)
      return undefined
    }
    const output: Buffer[] = []
    try {
      context.processSync(data, (chunk) => { output.push(chunk) })
    } catch (error) {
      this.#putBack(context, false)
      throw error
    }
    this.#putBack(context, true)
    const bytes = output.length === 1 ? output[0]! : Buffer.concat(output)
    return bytes.subarray(0, bytes.length - TAIL_LENGTH)
  }

  /** Starts the compression of one message; it runs after every message started before. */
  start (): MessageDeflation {
    const previous = this.#chain
    let release!: () => void
    this.#chain = new Promise<void>((resolve) => { release = resolve })
    this.#pending++
    let steps: Promise<unknown> = previous
    let context: ZlibContext | undefined
    let finished = false
    let ended = false
    let fed = 0
    const finish = (clean: boolean): void => {
      if (finished) return
      finished = true
      if (context !== undefined) this.#putBack(context, clean)
      context = undefined
      this.#pending--
      release()
    }
    const step = (input: Buffer, final: boolean): Promise<Buffer> => {
      const run = steps.then(async () => {
        try {
          if (finished) throw new WriteClosedError('message compression was aborted')
          if (this.#closed) throw new WriteClosedError('compressor closed')
          fed += input.length
          if (final && fed === 0) {
            finish(true)
            return Buffer.from(EMPTY_MESSAGE)
          }
          context ??= this.#take()
          const taken = context
          const output: Buffer[] = []
          await this.#limiter.run(() => taken.process(input, final, (chunk) => { output.push(chunk) }))
          const bytes = output.length === 1 ? output[0]! : Buffer.concat(output)
          if (!final) return bytes
          finish(true)
          return bytes.subarray(0, bytes.length - TAIL_LENGTH)
        } catch (error) {
          finish(false)
          throw error
        }
      })
      steps = run.catch(() => {})
      return run
    }
    return {
      write: (data) => ended ? Promise.reject(new WriteClosedError('message compression already ended')) : step(data, false),
      end: (data = EMPTY) => {
        if (ended) return Promise.reject(new WriteClosedError('message compression already ended'))
        ended = true
        return step(data, true)
      },
      abort: () => {
        ended = true
        steps = steps.then(() => { finish(false) })
      }
    }
  }

  /**
   * Notes that a message compressed elsewhere (a standalone PreparedMessage) was sent: the peer's
   * window now holds bytes this compressor never saw, so it must not refer back past them. Takes
   * effect in order with the messages started before.
   */
  forgetHistory (): void {
    if (this.noContextTakeover) return
    // Nothing queued: now is in order, and keeps the next message free to go synchronously.
    if (this.#pending === 0) {
      this.#resetOwn()
      return
    }
    this.#pending++
    this.#chain = this.#chain.then(() => {
      this.#pending--
      this.#resetOwn()
    })
  }

  /** Frees the context; later compressions reject with WriteClosedError. */
  close (): void {
    this.#closed = true
    this.#dropOwn()
  }

  #take (sync = false): ZlibContext {
    const settings: DeflateSettings = { level: this.#level, memLevel: this.#memLevel, windowBits: this.windowBits }
    if (this.noContextTakeover) return sharedContexts.take(deflateKey(settings), () => ZlibContext.deflate(settings))
    // A message is starting: the idle timer must not free the context under it. No timer fires
    // during a sync job, so that one merely refreshes it afterwards, which is cheaper.
    if (!sync && this.#idleTimer !== undefined) {
      clearTimeout(this.#idleTimer)
      this.#idleTimer = undefined
    }
    if (this.#own !== undefined && this.#ownLevel !== this.#level) this.#dropOwn()
    this.#ownLevel = this.#level
    this.#own ??= ZlibContext.deflate(settings)
    return this.#own
  }

  #putBack (context: ZlibContext, clean: boolean): void {
    if (this.noContextTakeover) {
      if (this.#closed || !clean) context.close()
      else sharedContexts.give(context)
      return
    }
    // A message that failed or was abandoned half-way left bytes in the history the peer never saw.
    if (!clean || context.broken) {
      if (this.#own === context) this.#dropOwn()
      return
    }
    this.#armIdleTimer()
  }

  #resetOwn (): void {
    this.#own?.reset()
  }

  #armIdleTimer (): void {
    if (this.#idleTimeout === 0) return
    if (this.#idleTimer !== undefined) {
      this.#idleTimer.refresh()
      return
    }
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined
      this.#dropOwn()
    }, this.#idleTimeout)
    this.#idleTimer.unref()
  }

  #dropOwn (): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    this.#own?.close()
    this.#own = undefined
  }
}
