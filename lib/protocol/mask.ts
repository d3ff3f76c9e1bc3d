import { randomFillSync } from 'node:crypto'
import { endianness } from 'node:os'

const LITTLE_ENDIAN = endianness() === 'LE'
/** Below this length a byte loop beats building a 32-bit view. */
const WORD_LOOP_MIN = 32

/**
 * XORs `data` in place with the 4-byte masking `key`, starting at mask position `phase` (0-3),
 * and returns the phase for the byte after `data`. Masking twice with the same arguments restores data.
 */
export function applyMask (data: Uint8Array, key: Uint8Array, phase = 0): number {
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
