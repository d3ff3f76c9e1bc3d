import type { BufferPool } from './buffer-pool.js'

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
    closeTimeout: options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT
  }
  checkInteger('readLimit', resolved.readLimit, 0)
  checkInteger('maxFragments', resolved.maxFragments, 1)
  checkInteger('readBufferSize', resolved.readBufferSize, 1)
  checkInteger('writeBufferSize', resolved.writeBufferSize, 1)
  checkInteger('closeTimeout', resolved.closeTimeout, 0)
  resolvedOnce.add(resolved)
  return resolved
}

function checkInteger (name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`websocket: option ${name} must be an integer >= ${min}, got ${String(value)}`)
  }
}
