import type { ZlibLimiter } from './limiter.js'

/** Settings of one connection's compression; every field is optional. */
export interface PerMessageDeflateOptions {
  /**
   * zlib compression level 0..9. Default 3: on chatty JSON it reaches about 90 % of level 6's ratio
   * (4.0x against 4.4x with context takeover) at three times level 6's speed on large messages.
   */
  level?: number
  /**
   * zlib memLevel 1..9: the compressor's hash table and symbol buffer take 2^(memLevel+9) bytes.
   * Default 4 (8 KiB, against 128 KiB for zlib's default 8), with the same ratio on small messages
   * and about 1 % less on large ones.
   */
  memLevel?: number
  /**
   * Messages shorter than this many bytes are sent uncompressed. Default 1024 when this side
   * resets its context after every message (a short message alone hardly shrinks), 32 with context
   * takeover (a short message that repeats earlier ones shrinks several times).
   */
  threshold?: number
  /** The read limit in bytes, read at every check; inflated output beyond it fails with 1009. 0 = none. */
  readLimit?: () => number
  /**
   * Milliseconds without a compressed message after which a compressor with context takeover is
   * freed; the next message starts a fresh context (allowed: history is the sender's choice).
   * Default 10000; 0 keeps it for the life of the connection.
   */
  idleTimeout?: number
  /**
   * Messages (compressing) and compressed frame payloads (inflating) of at most this many bytes are
   * handled on the event loop thread, with no threadpool round trip, when nothing of the same
   * connection and direction is queued before them; larger ones, and the rest of an inflation that
   * outgrows eight times this bound, go to the threadpool. Default 8192: up to about there,
   * compressing chatty JSON at level 3 on the event loop costs it no more time than handing the
   * job to the threadpool does (0.1-0.3 ms at 8 KiB); beyond it the threadpool costs the event loop
   * less. Inflating is cheaper still. 0 sends everything to the threadpool.
   */
  syncLimit?: number
  /** The limiter of concurrent zlib jobs; default the process-wide one. */
  limiter?: ZlibLimiter
}

/** Default of `PerMessageDeflateOptions.level`. */
export const DEFAULT_COMPRESSION_LEVEL = 3
/** Default of `PerMessageDeflateOptions.memLevel`. */
export const DEFAULT_MEM_LEVEL = 4
/** Default threshold when this side sends without context takeover. */
export const DEFAULT_THRESHOLD = 1024
/** Default threshold when this side keeps its context between messages. */
export const DEFAULT_CONTEXT_THRESHOLD = 32
/** Default of `PerMessageDeflateOptions.idleTimeout`. */
export const DEFAULT_IDLE_TIMEOUT = 10_000
/** Default of `PerMessageDeflateOptions.syncLimit`. */
export const DEFAULT_SYNC_LIMIT = 8 * 1024

/** Throws a RangeError unless `level` is a zlib compression level (0..9). */
export function checkLevel (level: number): number {
  return checkRange('compression level', level, 0, 9)
}

/** Throws a RangeError unless `memLevel` is a zlib memLevel (1..9). */
export function checkMemLevel (memLevel: number): number {
  return checkRange('memLevel', memLevel, 1, 9)
}

/** Throws a RangeError unless `syncLimit` is a byte count (an integer >= 0); returns it. */
export function checkSyncLimit (syncLimit: number): number {
  return checkRange('syncLimit', syncLimit, 0, Number.MAX_SAFE_INTEGER)
}

/** Throws a RangeError unless `value` is an integer from `min` to `max`; returns it. */
export function checkRange (name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`websocket: ${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

/** zlib window bits for an agreed RFC 7692 value: 8 becomes 9 (see AgreedParams). */
export function zlibWindowBits (agreed: number): number {
  return Math.max(9, agreed)
}
