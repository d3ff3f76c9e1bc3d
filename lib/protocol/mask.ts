import { randomFillSync } from 'node:crypto'
import { endianness } from 'node:os'
import { simdMasker, type SimdMasker } from './mask-simd.js'

const LITTLE_ENDIAN = endianness() === 'LE'
/** Below this length a byte loop beats building a 32-bit view. */
const WORD_LOOP_MIN = 32

/**
 * From this length on, applyMask runs in WebAssembly SIMD when the engine has it. Copying into and out
 * of WebAssembly memory makes the two paths about even at 125 bytes; at 256 SIMD was 1.4-1.7x faster
 * in every run of `npm run bench:mask`, and ~5x from 4 KiB.
 */
export const SIMD_MASK_MIN = 256

let simd = simdMasker

/**
 * XORs `data` in place with the 4-byte masking `key` (only its first four bytes are read, so a key
 * may sit at the start of a larger buffer), starting at mask position `phase` (0-3),
 * and returns the phase for the byte after `data`. Masking twice with the same arguments restores data.
 * The result is the same whichever path (WebAssembly SIMD or JavaScript) does the work.
 */
export function applyMask (data: Uint8Array, key: Uint8Array, phase = 0): number {
  if (simd !== undefined && data.length >= SIMD_MASK_MIN) return simd.mask(data, key, phase)
  return applyMaskJs(data, key, phase)
}

/**
 * Swaps the WebAssembly masker applyMask uses, undefined forcing the JavaScript loop, and returns the
 * previous one. Internal: for tests of the fallback path.
 */
export function useSimdMasker (masker: SimdMasker | undefined): SimdMasker | undefined {
  const previous = simd
  simd = masker
  return previous
}

/** applyMask's portable path, 32 bits at a time; applyMask uses it for short data and without WebAssembly SIMD. */
export function applyMaskJs (data: Uint8Array, key: Uint8Array, phase: number): number {
  const length = data.length
  let i = 0
  if (length >= WORD_LOOP_MIN && LITTLE_ENDIAN) {
    // Align to 4 bytes so the middle can be XORed a 32-bit word at a time.
    const misalignment = (data.byteOffset & 3)
    const lead = misalignment === 0 ? 0 : 4 - misalignment
    for (; i < lead; i++) data[i] ^= key[(phase + i) & 3]!
    const words = (length - i) >>> 2
    if (words > 0) {
      const p = (phase + i) & 3
      const word = (key[p]! | (key[(p + 1) & 3]! << 8) | (key[(p + 2) & 3]! << 16) | (key[(p + 3) & 3]! << 24)) >>> 0
      const view = new Uint32Array(data.buffer, data.byteOffset + i, words)
      for (let w = 0; w < words; w++) view[w]! ^= word
      i += words << 2
    }
  }
  for (; i < length; i++) data[i] ^= key[(phase + i) & 3]!
  return (phase + length) & 3
}

const RANDOM_POOL_SIZE = 4096
const randomPool = Buffer.alloc(RANDOM_POOL_SIZE)
let randomOffset = RANDOM_POOL_SIZE

/**
 * Returns 4 fresh bytes from a cryptographically strong source (RFC 6455 §10.3 forbids predictable
 * masks). The bytes are a view into a pool that is refilled later, so use them before the next call.
 */
export function nextMaskKey (): Buffer {
  if (randomOffset === RANDOM_POOL_SIZE) {
    randomFillSync(randomPool)
    randomOffset = 0
  }
  const key = randomPool.subarray(randomOffset, randomOffset + 4)
  randomOffset += 4
  return key
}
