import { frameHeaderSize, writeFrameHeader } from './frame.js'
import { applyMask, nextMaskKey } from './mask.js'

/** What a message write accepts: bytes in any common form, or a string sent as UTF-8. */
export type Payload = Buffer | Uint8Array | ArrayBuffer | ArrayBufferView | string

/** Server payloads above this size are written beside their header instead of being copied after it. */
export const MERGE_LIMIT = 16 * 1024

/** Turns any Payload into a Buffer view (no copy) or keeps a string as it is; undefined for anything else. */
export function toPayload (data: Payload): Buffer | string | undefined {
  if (typeof data === 'string' || Buffer.isBuffer(data)) return data
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return undefined
}

/** The error for data a write cannot send. */
export const BAD_PAYLOAD = 'message data must be a string, Buffer, ArrayBuffer or typed array'

/** Bytes of a Payload once encoded. */
export function payloadLength (payload: Buffer | string): number {
  return typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
}

/**
 * Builds one complete frame (header and payload in a single buffer). With `mask` a fresh key is
 * drawn and the copy is masked; the caller's payload is never modified.
 */
export function encodeFrame (opcode: number, fin: boolean, rsv1: boolean, payload: Buffer | string, mask: boolean): Buffer {
  const length = payloadLength(payload)
  const key = mask ? nextMaskKey() : undefined
  const headerSize = frameHeaderSize(length, mask)
  const frame = Buffer.allocUnsafe(headerSize + length)
  writeFrameHeader(frame, 0, opcode, fin, rsv1, length, key)
  if (typeof payload === 'string') frame.write(payload, headerSize)
  else payload.copy(frame, headerSize)
  if (key !== undefined && length > 0) applyMask(frame.subarray(headerSize), key, 0)
  return frame
}

/** Builds only the header of an unmasked frame, for payloads written beside it. */
export function encodeHeader (opcode: number, fin: boolean, rsv1: boolean, length: number): Buffer {
  const header = Buffer.allocUnsafe(frameHeaderSize(length, false))
  writeFrameHeader(header, 0, opcode, fin, rsv1, length)
  return header
}
