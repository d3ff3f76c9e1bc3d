import type { BufferPool } from './buffer-pool.js'
import { checkInteger } from './option-checks.js'

/** Settings of one connection; every field is optional and has the default shown. */
export interface ConnOptions {
  /**
   * Largest message, in bytes, that reads accept; a bigger one closes the connection with 1009.
   * Checked on frame headers before payload is kept. 0 means no limit. Default 16 MiB.
   */
  readLimit?: number
  /** Most frames one incoming message may be split into; more closes with 1009. Default 131072. */
  maxFragments?: number
  /**
   * Read-ahead: bytes of received, unread messages buffered before the socket is paused (TCP
   * backpressure). It is not the read limit: a message that a `readMessage` call waits for is never
   * paused on, and `nextReader` streams a larger one, so keep it small (it is what every client that
   * sends and does not read costs). Default 1 MiB.
   */
  readBufferSize?: number
  /** Fragment size of `nextWriter` messages, and size of each pooled write buffer. Default 4096. */
  writeBufferSize?: number
  /** Where `nextWriter` takes its buffer from and gives it back, so an idle connection holds none. */
  writeBufferPool?: BufferPool
  /** Whether received text is checked for UTF-8 (failing with 1007). Default true. */
  validateUtf8?: boolean
  /** Milliseconds `close()` waits for the peer's close frame and TCP end before destroying. Default 5000. */
  closeTimeout?: number
  /**
   * Slow-consumer limit: bytes queued for writing plus bytes the socket has not yet written
   * (`conn.bufferedAmount`) beyond which `send()` and topic publishes are refused for this
   * connection, as `slowConsumerPolicy` says. A message sent when nothing is buffered is never
   * refused for its size; awaited writes (`writeMessage`, `writeJSON`, ...) are never refused,
   * they wait. 0 means no limit. Default 4 MiB.
   */
  maxBufferedAmount?: number
  /**
   * What happens to a `send()` or publish over `maxBufferedAmount`: `'close'` closes the
   * connection with 1008 and a reason naming the limit; `'drop'` skips the message and counts it
   * in `conn.droppedMessages`. Default `'close'`.
   */
  slowConsumerPolicy?: SlowConsumerPolicy
}

/** What is done with a message for a connection over its `maxBufferedAmount`; see ConnOptions. */
export type SlowConsumerPolicy = 'close' | 'drop'

/**
 * The name of every connection option, in one list: the plugin's route options and what the
 * plugin hands to its Upgrader are derived from it, so a new option is declared once.
 */
export const CONN_OPTION_NAMES = Object.keys({
  // A Record of every key, so that this fails to compile when ConnOptions gains an option not named here.
  readLimit: true,
  maxFragments: true,
  readBufferSize: true,
  writeBufferSize: true,
  writeBufferPool: true,
  validateUtf8: true,
  closeTimeout: true,
  maxBufferedAmount: true,
  slowConsumerPolicy: true
} satisfies Record<keyof ConnOptions, true>) as ReadonlyArray<keyof ConnOptions>

/** The connection options among `options` (undefined ones left out). */
export function pickConnOptions (options: ConnOptions): ConnOptions {
  const picked: Record<string, unknown> = {}
  for (const name of CONN_OPTION_NAMES) {
    if (options[name] !== undefined) picked[name] = options[name]
  }
  return picked as ConnOptions
}

/** Default of `ConnOptions.readLimit`: 16 MiB. */
export const DEFAULT_READ_LIMIT = 16 * 1024 * 1024
/** Default of `ConnOptions.maxFragments`. */
export const DEFAULT_MAX_FRAGMENTS = 131072
/** Default of `ConnOptions.readBufferSize`: 1 MiB. */
export const DEFAULT_READ_BUFFER_SIZE = 1024 * 1024
/** Default of `ConnOptions.writeBufferSize`. */
export const DEFAULT_WRITE_BUFFER_SIZE = 4096
/** Default of `ConnOptions.closeTimeout`. */
export const DEFAULT_CLOSE_TIMEOUT = 5000
/** Default of `ConnOptions.maxBufferedAmount`: 4 MiB. */
export const DEFAULT_MAX_BUFFERED_AMOUNT = 4 * 1024 * 1024

/** ConnOptions with every default filled in. */
export type ResolvedConnOptions = Required<Omit<ConnOptions, 'writeBufferPool'>> & { writeBufferPool: BufferPool | undefined }

const resolvedOnce = new WeakSet<object>()

/**
 * Fills in defaults and rejects values that cannot work. A result passed in again is returned as
 * it is, so the connections of one Upgrader or Dialer share one options object.
 */
export function resolveConnOptions (options: ConnOptions = {}): ResolvedConnOptions {
  if (resolvedOnce.has(options)) return options as ResolvedConnOptions
  const resolved: ResolvedConnOptions = {
    readLimit: options.readLimit ?? DEFAULT_READ_LIMIT,
    maxFragments: options.maxFragments ?? DEFAULT_MAX_FRAGMENTS,
    readBufferSize: options.readBufferSize ?? DEFAULT_READ_BUFFER_SIZE,
    writeBufferSize: options.writeBufferSize ?? DEFAULT_WRITE_BUFFER_SIZE,
    writeBufferPool: options.writeBufferPool,
    validateUtf8: options.validateUtf8 ?? true,
    closeTimeout: options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT,
    maxBufferedAmount: options.maxBufferedAmount ?? DEFAULT_MAX_BUFFERED_AMOUNT,
    slowConsumerPolicy: options.slowConsumerPolicy ?? 'close'
  }
  checkInteger('readLimit', resolved.readLimit, 0)
  checkInteger('maxFragments', resolved.maxFragments, 1)
  checkInteger('readBufferSize', resolved.readBufferSize, 1)
  checkInteger('writeBufferSize', resolved.writeBufferSize, 1)
  checkInteger('closeTimeout', resolved.closeTimeout, 0)
  checkInteger('maxBufferedAmount', resolved.maxBufferedAmount, 0)
  if (resolved.slowConsumerPolicy !== 'close' && resolved.slowConsumerPolicy !== 'drop') {
    throw new TypeError(`websocket: option slowConsumerPolicy must be 'close' or 'drop', got ${JSON.stringify(resolved.slowConsumerPolicy)}`)
  }
  resolvedOnce.add(resolved)
  return resolved
}
