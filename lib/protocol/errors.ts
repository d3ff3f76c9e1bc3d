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
 * The stable code of every rule a peer can break, one per rule: programs match on these (ws calls
 * them `WS_ERR_*`), and a code never changes its meaning. `PROTOCOL_ERROR_CODES` gives the close code
 * each one fails the connection with.
 */
export type ProtocolErrorCode =
  | 'ERR_WS_RESERVED_BITS'
  | 'ERR_WS_UNEXPECTED_RSV1'
  | 'ERR_WS_RESERVED_OPCODE'
  | 'ERR_WS_FRAGMENTED_CONTROL'
  | 'ERR_WS_CONTROL_TOO_LONG'
  | 'ERR_WS_UNEXPECTED_CONTINUATION'
  | 'ERR_WS_EXPECTED_CONTINUATION'
  | 'ERR_WS_EXPECTED_MASK'
  | 'ERR_WS_UNEXPECTED_MASK'
  | 'ERR_WS_INVALID_LENGTH'
  | 'ERR_WS_READ_LIMIT'
  | 'ERR_WS_TOO_MANY_FRAGMENTS'
  | 'ERR_WS_INVALID_UTF8'
  | 'ERR_WS_INVALID_CLOSE_PAYLOAD'
  | 'ERR_WS_INVALID_CLOSE_CODE'
  | 'ERR_WS_INVALID_COMPRESSED_DATA'

/** What `PROTOCOL_ERROR_CODES` says of one code. */
export interface ProtocolErrorInfo {
  /** The close code the connection is failed with. */
  readonly closeCode: 1002 | 1007 | 1009
  /** What the peer sent that broke the rule, in one line (as the README's table says it). */
  readonly rule: string
}

/** Every code a ProtocolError can carry, with its close code and its rule; frozen. */
export const PROTOCOL_ERROR_CODES: Readonly<Record<ProtocolErrorCode, ProtocolErrorInfo>> = Object.freeze({
  ERR_WS_RESERVED_BITS: Object.freeze({ closeCode: 1002, rule: 'a frame with RSV2 or RSV3 set' }),
  ERR_WS_UNEXPECTED_RSV1: Object.freeze({ closeCode: 1002, rule: 'RSV1 without permessage-deflate, or on a control or continuation frame' }),
  ERR_WS_RESERVED_OPCODE: Object.freeze({ closeCode: 1002, rule: 'a reserved opcode (3-7, 11-15)' }),
  ERR_WS_FRAGMENTED_CONTROL: Object.freeze({ closeCode: 1002, rule: 'a control frame without FIN' }),
  ERR_WS_CONTROL_TOO_LONG: Object.freeze({ closeCode: 1002, rule: 'a control frame payload over 125 bytes' }),
  ERR_WS_UNEXPECTED_CONTINUATION: Object.freeze({ closeCode: 1002, rule: 'a continuation frame with no message to continue' }),
  ERR_WS_EXPECTED_CONTINUATION: Object.freeze({ closeCode: 1002, rule: 'a text or binary frame inside a fragmented message' }),
  ERR_WS_EXPECTED_MASK: Object.freeze({ closeCode: 1002, rule: 'an unmasked frame to a server' }),
  ERR_WS_UNEXPECTED_MASK: Object.freeze({ closeCode: 1002, rule: 'a masked frame to a client' }),
  ERR_WS_INVALID_LENGTH: Object.freeze({ closeCode: 1002, rule: 'a 64-bit payload length with the most significant bit set' }),
  ERR_WS_READ_LIMIT: Object.freeze({ closeCode: 1009, rule: 'a message over readLimit (a compressed one once inflated), or a frame length beyond 2^53' }),
  ERR_WS_TOO_MANY_FRAGMENTS: Object.freeze({ closeCode: 1009, rule: 'a message split into more than maxFragments frames' }),
  ERR_WS_INVALID_UTF8: Object.freeze({ closeCode: 1007, rule: 'a text message or close reason that is not UTF-8' }),
  ERR_WS_INVALID_CLOSE_PAYLOAD: Object.freeze({ closeCode: 1002, rule: 'a close frame with a 1-byte payload' }),
  ERR_WS_INVALID_CLOSE_CODE: Object.freeze({ closeCode: 1002, rule: 'a close code a peer may not send (1004-1006, 1015, under 1000, 1016-2999, 5000 and up)' }),
  ERR_WS_INVALID_COMPRESSED_DATA: Object.freeze({ closeCode: 1007, rule: 'a compressed message that does not inflate' })
})

/**
 * A broken rule of RFC 6455 (or of a limit); the connection was failed with `closeCode`, and `code`
 * names the rule.
 */
export class ProtocolError extends Error {
  override readonly name: string = 'ProtocolError'
  /** The close code that was sent to the peer. */
  readonly closeCode: number
  /** The rule that was broken, stable for programs to match on. */
  readonly code: ProtocolErrorCode

  // `code` has no default: a rule raised under a catch-all code is one nobody can match on.
  constructor (message: string, closeCode: number, code: ProtocolErrorCode) {
    super(`websocket: ${message}`)
    this.closeCode = closeCode
    this.code = code
  }
}

/**
 * A message went over the read limit (`ERR_WS_READ_LIMIT`) or the fragment limit
 * (`ERR_WS_TOO_MANY_FRAGMENTS`); the connection was closed with 1009 before the data was kept.
 */
export class ReadLimitError extends ProtocolError {
  override readonly name = 'ReadLimitError'
  declare readonly code: 'ERR_WS_READ_LIMIT' | 'ERR_WS_TOO_MANY_FRAGMENTS'
  constructor (message = 'read limit exceeded', code: 'ERR_WS_READ_LIMIT' | 'ERR_WS_TOO_MANY_FRAGMENTS' = 'ERR_WS_READ_LIMIT') {
    super(message, 1009, code)
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

/**
 * A publish reached this process's subscribers but could not be handed to the other processes
 * (their transport, Redis say, is unavailable): `result` says what was delivered here, and the
 * message is lost for every other process (at most once).
 */
export class PublishError extends Error {
  override readonly name = 'PublishError'
  readonly code = 'ERR_WS_PUBLISH'
  /** What the publish did in this process. */
  readonly result: { delivered: number, dropped: number, closed: number }

  constructor (topic: string, result: { delivered: number, dropped: number, closed: number }, cause: unknown) {
    super(`websocket: publish to ${JSON.stringify(topic)} reached ${result.delivered} local subscriber(s) but not the other processes: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.result = result
  }
}
