import { endianness } from 'node:os'
import { applyMaskJs } from '../../lib/protocol/mask.js'

const LITTLE_ENDIAN = endianness() === 'LE'

/**
 * The JavaScript candidate for unmask-while-copying: writes `src` XORed with `key` (from mask position
 * `phase`) into `dst` at `dstOffset` in one pass and returns the next phase. When `src` and the target
 * disagree on alignment modulo 4, no pair of 32-bit views exists, so it copies and masks in place.
 */
export function copyUnmaskedJs (src: Uint8Array, dst: Uint8Array, dstOffset: number, key: Uint8Array, phase: number): number {
  const length = src.length
  const out = dst.subarray(dstOffset, dstOffset + length)
  if (out.length !== length) throw new RangeError('copyUnmaskedJs: dst is too small')
  if (length < 32 || !LITTLE_ENDIAN || ((src.byteOffset ^ out.byteOffset) & 3) !== 0) {
    out.set(src)
    return applyMaskJs(out, key, phase)
  }
  let i = 0
  const lead = (4 - (out.byteOffset & 3)) & 3
  for (; i < lead; i++) out[i] = src[i]! ^ key[(phase + i) & 3]!
  const words = (length - i) >>> 2
  const p = (phase + i) & 3
  const word = key[p]! | (key[(p + 1) & 3]! << 8) | (key[(p + 2) & 3]! << 16) | (key[(p + 3) & 3]! << 24)
  const from = new Uint32Array(src.buffer, src.byteOffset + i, words)
  const to = new Uint32Array(out.buffer, out.byteOffset + i, words)
  for (let w = 0; w < words; w++) to[w] = from[w]! ^ word
  i += words << 2
  for (; i < length; i++) out[i] = src[i]! ^ key[(phase + i) & 3]!
  return (phase + length) & 3
}
