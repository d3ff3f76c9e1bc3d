import { randomBytes } from 'node:crypto'
import { deflateRawSync, constants as zlib } from 'node:zlib'

const MASK = randomBytes(4)

/** Opcodes the generator writes. */
export const TEXT = 1
export const BINARY = 2
export const CLOSE = 8

/**
 * A complete client frame (FIN set, masked) built once and written many times. One mask key per
 * generator is fine here: masking protects browsers' proxies, not a loopback benchmark, and the
 * servers unmask every frame exactly as they would with fresh keys.
 */
export function maskedFrame (opcode: number, payload: Buffer, rsv1 = false): Buffer {
  const length = payload.length
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8
  const header = 2 + lengthBytes + 4
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x80 | (rsv1 ? 0x40 : 0) | opcode
  if (lengthBytes === 0) {
    frame[1] = 0x80 | length
  } else if (lengthBytes === 2) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  MASK.copy(frame, header - 4)
  for (let i = 0; i < length; i++) frame[header + i] = payload[i]! ^ MASK[i & 3]!
  return frame
}

/**
 * The permessage-deflate payload of `message` compressed on its own (no context takeover, which
 * the generator offers as client_no_context_takeover), so one pre-built frame is valid every time.
 */
export function deflateMessage (message: Buffer): Buffer {
  const out = deflateRawSync(message, { finishFlush: zlib.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4) // RFC 7692 §7.2.1: drop the 00 00 ff ff tail
}

/** A masked close frame with status 1000. */
export function closeFrame (): Buffer {
  return maskedFrame(CLOSE, Buffer.from([0x03, 0xe8]))
}

/** `count` copies of `frame` in one buffer, so a batch of messages costs one write. */
export function repeat (frame: Buffer, count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, () => frame))
}
