import { Compressor, type MessageDeflation } from './compressor.js'
import { Decompressor, type InflateTarget, type MessageInflation } from './decompressor.js'
import { zlibLimiter, type ZlibLimiter } from './limiter.js'
import type { AgreedParams } from './negotiation.js'
import {
  DEFAULT_COMPRESSION_LEVEL, DEFAULT_CONTEXT_THRESHOLD, DEFAULT_IDLE_TIMEOUT, DEFAULT_MEM_LEVEL, DEFAULT_SYNC_LIMIT,
  DEFAULT_THRESHOLD, checkRange, checkSyncLimit, zlibWindowBits, type PerMessageDeflateOptions
} from './options.js'

export type { InflateTarget, MessageDeflation, MessageInflation }

/**
 * permessage-deflate (RFC 7692) for one connection and role, built from the agreed parameters:
 * compresses outgoing messages (the tail `00 00 ff ff` removed) and inflates incoming ones piece by
 * piece under the read limit, each direction in message order, with every zlib job going through
 * the process-wide limiter. Contexts are made lazily, shared through a pool when the agreement
 * resets them after every message, and freed by `close()`.
 */
export class PerMessageDeflate {
  /** The parameters this codec was built from. */
  readonly params: AgreedParams
  /** Whether this is the server end. */
  readonly isServer: boolean
  /** Messages shorter than this many bytes should be sent uncompressed (see `shouldCompress`). */
  threshold: number
  readonly #compressor: Compressor
  readonly #decompressor: Decompressor

  constructor (params: AgreedParams, isServer: boolean, options: PerMessageDeflateOptions = {}) {
    this.params = params
    this.isServer = isServer
    const limiter = options.limiter ?? zlibLimiter
    const syncLimit = checkSyncLimit(options.syncLimit ?? DEFAULT_SYNC_LIMIT)
    const sendNoContextTakeover = isServer ? params.serverNoContextTakeover : params.clientNoContextTakeover
    this.#compressor = new Compressor({
      windowBits: zlibWindowBits(isServer ? params.serverMaxWindowBits : params.clientMaxWindowBits),
      noContextTakeover: sendNoContextTakeover,
      level: options.level ?? DEFAULT_COMPRESSION_LEVEL,
      memLevel: options.memLevel ?? DEFAULT_MEM_LEVEL,
      idleTimeout: checkRange('idleTimeout', options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT, 0, 2 ** 31 - 1),
      syncLimit,
      limiter
    })
    this.#decompressor = new Decompressor({
      windowBits: zlibWindowBits(isServer ? params.clientMaxWindowBits : params.serverMaxWindowBits),
      noContextTakeover: isServer ? params.clientNoContextTakeover : params.serverNoContextTakeover,
      readLimit: options.readLimit ?? (() => 0),
      syncLimit,
      limiter
    })
    this.threshold = checkRange('threshold', options.threshold ?? (sendNoContextTakeover ? DEFAULT_THRESHOLD : DEFAULT_CONTEXT_THRESHOLD), 0, Number.MAX_SAFE_INTEGER)
  }

  /** The zlib level of messages compressed from now on. */
  get level (): number {
    return this.#compressor.level
  }

  /** Changes the level for later messages; with context takeover the history starts anew once. */
  setLevel (level: number): void {
    this.#compressor.level = level
  }

  /** zlib window bits this side compresses with (the agreed value, 8 raised to 9). */
  get sendWindowBits (): number {
    return this.#compressor.windowBits
  }

  /** zlib window bits this side inflates with (the agreed value, 8 raised to 9). */
  get receiveWindowBits (): number {
    return this.#decompressor.windowBits
  }

  /** Whether this side resets its compression context after every message. */
  get sendNoContextTakeover (): boolean {
    return this.#compressor.noContextTakeover
  }

  /** Whether the peer resets its compression context after every message. */
  get receiveNoContextTakeover (): boolean {
    return this.#decompressor.noContextTakeover
  }

  /** Which zlib contexts this connection owns right now (borrowed pool contexts are not counted). */
  get contexts (): { compressor: boolean, decompressor: boolean } {
    return { compressor: this.#compressor.hasContext, decompressor: this.#decompressor.hasContext }
  }

  /** Whether a message of `byteLength` bytes is worth compressing (at least `threshold`). */
  shouldCompress (byteLength: number): boolean {
    return byteLength >= this.threshold
  }

  /**
   * Compresses a whole message (payload for a frame with RSV1). Messages are compressed in call
   * order; rejects with WriteClosedError after `close()`.
   */
  compress (data: Buffer): Promise<Buffer> {
    return this.#compressor.compress(data)
  }

  /**
   * Compresses a whole message on the calling thread and returns the payload `compress` would
   * resolve with, or undefined when the caller must use `compress` instead: the message is larger
   * than `syncLimit`, a message compressed before it (`compress`, `startCompress`) has not finished,
   * the codec is closed, or the runtime lacks Node's sync zlib entry (an empty message, which needs
   * no zlib, is answered all the same). Either way the messages keep their call order and the
   * compression history. Throws what `compress` would reject with (a zlib failure, never seen with
   * valid settings).
   */
  compressSync (data: Buffer): Buffer | undefined {
    return this.#compressor.compressSync(data)
  }

  /** Starts a message compressed in pieces (a streaming writer); it runs after messages started before. */
  startCompress (): MessageDeflation {
    return this.#compressor.start()
  }

  /**
   * Starts inflating an incoming compressed message; `write` its frames' payloads as they arrive
   * and `end` it after the final frame. `text` adds the UTF-8 check (the parser skips it for
   * compressed messages, whose bytes are not text until inflated).
   */
  inflateMessage (target: InflateTarget, text = false): MessageInflation {
    return this.#decompressor.inflate(target, text)
  }

  /** Inflates a whole message; rejects like `InflateTarget.onError`. */
  decompress (data: Buffer, text = false): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = []
      const inflation = this.inflateMessage({
        onData: (chunk) => { chunks.push(chunk) },
        onEnd: () => { resolve(Buffer.concat(chunks)) },
        onError: reject
      }, text)
      if (data.length > 0) inflation.write(data)
      inflation.end()
    })
  }

  /**
   * Whether a payload from `compressStandalone` made with `windowBits` may be sent on this
   * connection: its window must fit the one this side agreed to compress with.
   */
  canSendStandalone (windowBits: number): boolean {
    return zlibWindowBits(windowBits) <= this.sendWindowBits
  }

  /**
   * Call when a standalone payload was sent, in order with `compress`/`startCompress`: with
   * context takeover this side's history then starts anew, because the peer's window now holds
   * bytes this compressor never saw.
   */
  standaloneSent (): void {
    this.#compressor.forgetHistory()
  }

  /** Frees every zlib context; later compressions reject, queued inflations are dropped silently. */
  close (): void {
    this.#compressor.close()
    this.#decompressor.close()
  }
}

/** Settings of a standalone compression; all optional. */
export interface StandaloneOptions {
  /** Default 3, as PerMessageDeflateOptions.level. */
  level?: number
  /** Default 4, as PerMessageDeflateOptions.memLevel. */
  memLevel?: number
  /** RFC 7692 window bits 8..15 (8 is compressed with 9, valid for 8). Default 15. */
  windowBits?: number
  limiter?: ZlibLimiter
}

/**
 * Compresses `data` from a fresh context, as one message: the result can be sent (RSV1 set) on
 * every connection whose `canSendStandalone(windowBits)` is true, whatever its context takeover,
 * after which that connection calls `standaloneSent()`. PreparedMessage uses it to compress a
 * broadcast once.
 */
export function compressStandalone (data: Buffer, options: StandaloneOptions = {}): Promise<Buffer> {
  const compressor = new Compressor({
    windowBits: zlibWindowBits(checkRange('windowBits', options.windowBits ?? 15, 8, 15)),
    noContextTakeover: true,
    level: options.level ?? DEFAULT_COMPRESSION_LEVEL,
    memLevel: options.memLevel ?? DEFAULT_MEM_LEVEL,
    idleTimeout: 0,
    syncLimit: 0,
    limiter: options.limiter ?? zlibLimiter
  })
  return compressor.compress(data)
}
