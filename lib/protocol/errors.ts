import { closeCodeLabel } from './close.js'

/**
 * Builds an error without a stack trace, for failures the peer or the socket caused: their stack
 * would only show the event loop, and capturing it costs more than the rest of a short connection's
 * close.
 */
export function stackless<T extends Error> (build: () => T): T {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return build()
  } finally {
    Error.stackTraceLimit = limit
  }
}

/**
 * The error every read returns once the peer's close frame (or the end of TCP without one, code 1006)
 * has been seen; `code` and `text` are what the peer sent.
 */
export class CloseError extends Error {
  override readonly name = 'CloseError'
  /** The close code the peer sent, 1005 when the frame had none, 1006 when no close frame came. */
  readonly code: number
  /** The close reason the peer sent, possibly empty. */
  readonly text: string

  constructor (code: number, text: string, options?: ErrorOptions) {
    super(`websocket: close ${code} (${closeCodeLabel(code)})${text === '' ? '' : ': ' + text}`, options)
    this.code = code
    this.text = text
  }
}

/**
 * A broken rule of RFC 6455 (or of a limit); the connection was failed with `closeCode`.
 * `code` is a stable string for programs: ERR_WS_PROTOCOL, ERR_WS_INVALID_UTF8 or ERR_WS_READ_LIMIT.
 */
export class ProtocolError extends Error {
  override readonly name: string = 'ProtocolError'
  /** The close code that was sent to the peer. */
  readonly closeCode: number
  /** A stable machine-readable error code. */
  readonly code: string

  constructor (message: string, closeCode: number, code = 'ERR_WS_PROTOCOL') {
    super(`websocket: ${message}`)
    this.closeCode = closeCode
    this.code = code
  }
}

/** A message went over the read limit; the connection was closed with 1009 before the data was kept. */
export class ReadLimitError extends ProtocolError {
  override readonly name = 'ReadLimitError'
  constructor (message = 'read limit exceeded') {
    super(message, 1009, 'ERR_WS_READ_LIMIT')
  }
}

/** A deadline (read, write or control-write) passed; `timeout` is always true. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError'
  readonly code = 'ERR_WS_TIMEOUT'
  readonly timeout = true
  constructor (message: string) {
    super(`websocket: ${message}`)
  }
}

/** A write was attempted after this side sent its close frame. */
export class CloseSentError extends Error {
  override readonly name = 'CloseSentError'
  readonly code = 'ERR_WS_CLOSE_SENT'
  constructor () {
    super('websocket: close sent')
  }
}

/** A write on a connection whose socket is gone, or on a message writer already closed. */
export class WriteClosedError extends Error {
  override readonly name = 'WriteClosedError'
  readonly code = 'ERR_WS_WRITE_CLOSED'
  constructor (message = 'write closed') {
    super(`websocket: ${message}`)
  }
}

/** A call got an argument it cannot use (bad message type, control payload over 125 bytes, ...). */
export class UsageError extends TypeError {
  override readonly name = 'UsageError'
  readonly code = 'ERR_WS_USAGE'
  constructor (message: string) {
    super(`websocket: ${message}`)
  }
}

/**
 * The opening handshake failed. On the server the HTTP response with `status` has already been
 * written; on the client `status`, `headers` and up to 1 KiB of `body` are what the server answered
 * (status 0 when it gave no valid HTTP response).
 */
export class HandshakeError extends Error {
  override readonly name = 'HandshakeError'
  readonly code = 'ERR_WS_HANDSHAKE'
  /** The HTTP status of the refusal. */
  readonly status: number
  /** Response headers (client side) or the headers that were sent with the refusal (server side). */
  readonly headers: Record<string, string | string[] | undefined>
  /** The start of the response body (client side), at most 1 KiB. */
  readonly body: Buffer

  constructor (message: string, status: number, headers: Record<string, string | string[] | undefined> = {}, body: Buffer = Buffer.alloc(0)) {
    super(`websocket: ${message}`)
    this.status = status
    this.headers = headers
    this.body = body
  }
}

/**
 * Reports whether `err` is a CloseError whose code is one of `codes`.
 * Unlike gorilla, an error wrapping a CloseError through `cause` also matches.
 */
export function isCloseError (err: unknown, ...codes: number[]): err is CloseError {
  const close = findCloseError(err)
  return close !== undefined && codes.includes(close.code)
}

/** Reports whether `err` is a CloseError whose code is not one of `expected`; any other error is false. */
export function isUnexpectedCloseError (err: unknown, ...expected: number[]): err is CloseError {
  const close = findCloseError(err)
  return close !== undefined && !expected.includes(close.code)
}

function findCloseError (err: unknown): CloseError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof CloseError) return e
  }
  return undefined
}
