/** Size of the message every broadcast sends. */
export const BROADCAST_SIZE = 1024

/** `size` bytes of printable ASCII, valid as a text message. */
export function textPayload (size: number): Buffer {
  const out = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) out[i] = 97 + (i % 26)
  return out
}

/** `size` bytes of deterministic pseudo-random binary data (xorshift), the same in every process. */
export function binaryPayload (size: number): Buffer {
  const out = Buffer.allocUnsafe(size)
  let x = 0x9e3779b9
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/**
 * A chat-like JSON document of exactly `size` bytes (padded in its text field), as a browser app
 * would send: repeated keys and words, which is what permessage-deflate is for.
 */
export function jsonPayload (size: number): Buffer {
  const base = {
    type: 'chat.message',
    room: 'general',
    user: { id: 4711, name: 'ada', roles: ['member', 'moderator'] },
    sentAt: '2026-01-01T12:00:00.000Z',
    text: ''
  }
  const words = ['hello', 'world', 'the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog']
  const empty = Buffer.byteLength(JSON.stringify(base))
  if (empty > size) throw new RangeError(`JSON payload cannot be smaller than ${empty} bytes`)
  let text = ''
  for (let i = 0; text.length < size - empty; i++) text += words[i % words.length] + ' '
  base.text = text.slice(0, size - empty)
  return Buffer.from(JSON.stringify(base))
}

/** The message servers broadcast in scenario (f). */
export function broadcastPayload (): Buffer {
  return jsonPayload(BROADCAST_SIZE)
}
