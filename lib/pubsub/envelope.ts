// What a bus puts on a Redis channel: a 10-byte header, then the message's bytes untouched.
//   byte 0     format version (1)
//   byte 1     flags: bit 0 set = binary message, clear = text (UTF-8); other bits must be 0
//   bytes 2-9  the publishing bus's random origin id, so it can drop its own publishes on receipt
// Redis channels carry arbitrary bytes, so no escaping or base64 is needed.
import { randomBytes } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import type { BusMessage } from './bus.js'

const VERSION = 1
const FLAG_BINARY = 0x01
const ORIGIN_LENGTH = 8
/** Bytes before the payload. */
export const HEADER_LENGTH = 2 + ORIGIN_LENGTH

/** A random id naming one bus among all the processes sharing a Redis. */
export function newOrigin (): Buffer {
  return randomBytes(ORIGIN_LENGTH)
}

/** The envelope of one message from `origin`. */
export function encodeEnvelope (origin: Buffer, message: BusMessage): Buffer {
  const envelope = Buffer.allocUnsafe(HEADER_LENGTH + message.data.length)
  envelope[0] = VERSION
  envelope[1] = message.binary ? FLAG_BINARY : 0
  origin.copy(envelope, 2)
  message.data.copy(envelope, HEADER_LENGTH)
  return envelope
}

/** What one received envelope turned out to be. */
export type Decoded =
  | { readonly kind: 'message', readonly message: BusMessage }
  | { readonly kind: 'own' }
  | { readonly kind: 'malformed', readonly reason: string }

/**
 * Reads an envelope received from Redis. Anything not written by encodeEnvelope (another app on
 * the same channel, a future format) is 'malformed' rather than delivered: a text message must be
 * valid UTF-8, since it goes out to WebSocket clients as a text frame.
 */
export function decodeEnvelope (origin: Buffer, envelope: Buffer): Decoded {
  if (envelope.length < HEADER_LENGTH) return { kind: 'malformed', reason: `shorter than the ${HEADER_LENGTH}-byte header` }
  if (envelope[0] !== VERSION) return { kind: 'malformed', reason: `unknown format version ${envelope[0]!}` }
  const flags = envelope[1]!
  if ((flags & ~FLAG_BINARY) !== 0) return { kind: 'malformed', reason: `unknown flags 0x${flags.toString(16)}` }
  if (origin.compare(envelope, 2, HEADER_LENGTH) === 0) return { kind: 'own' }
  const data = envelope.subarray(HEADER_LENGTH)
  const binary = flags === FLAG_BINARY
  if (!binary && !isUtf8(data)) return { kind: 'malformed', reason: 'text message that is not valid UTF-8' }
  return { kind: 'message', message: { binary, data } }
}
