/** Bytes a frame header needs for this payload length, with or without a masking key. */
export function frameHeaderSize (payloadLength: number, masked: boolean): number {
  const lengthBytes = payloadLength < 126 ? 2 : payloadLength < 65536 ? 4 : 10
  return masked ? lengthBytes + 4 : lengthBytes
}

/**
 * Writes a frame header at `offset` of `target` and returns where the payload starts.
 * With a `maskKey` the MASK bit is set and the 4 key bytes follow the length; the payload itself
 * is not touched here.
 */
export function writeFrameHeader (
  target: Uint8Array,
  offset: number,
  opcode: number,
  fin: boolean,
  rsv1: boolean,
  payloadLength: number,
  maskKey?: Uint8Array
): number {
  target[offset] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode
  const maskBit = maskKey === undefined ? 0 : 0x80
  let at = offset + 2
  if (payloadLength < 126) {
    target[offset + 1] = maskBit | payloadLength
  } else if (payloadLength < 65536) {
    target[offset + 1] = maskBit | 126
    target[at++] = payloadLength >>> 8
    target[at++] = payloadLength & 0xff
  } else {
    target[offset + 1] = maskBit | 127
    const high = Math.floor(payloadLength / 0x100000000)
    const low = payloadLength >>> 0
    target[at++] = high >>> 24
    target[at++] = (high >>> 16) & 0xff
    target[at++] = (high >>> 8) & 0xff
    target[at++] = high & 0xff
    target[at++] = low >>> 24
    target[at++] = (low >>> 16) & 0xff
    target[at++] = (low >>> 8) & 0xff
    target[at++] = low & 0xff
  }
  if (maskKey !== undefined) {
    target[at++] = maskKey[0]!
    target[at++] = maskKey[1]!
    target[at++] = maskKey[2]!
    target[at++] = maskKey[3]!
  }
  return at
}
