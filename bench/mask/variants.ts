import { applyMask, applyMaskJs } from '../../lib/protocol/mask.js'
import type { SimdMasker } from '../../lib/protocol/mask-simd.js'
import { copyUnmaskedJs } from './copy-unmasked-js.js'

/** One way of unmasking, set up for a payload size: `prepare` allocates and returns the operation to time. */
export interface Variant {
  name: string
  prepare (size: number, offset: number): () => void
}

const KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d)

/** `size` bytes at `offset` into a fresh Buffer, as a parser's payload sits behind its frame header. */
function payload (size: number, offset: number): Buffer {
  const whole = Buffer.alloc(offset + size)
  fill(whole)
  return whole.subarray(offset)
}

/*
 * Source and target of a copy, in one Buffer so that their distance is known: 1024 bytes modulo a
 * page. glibc's `rep movsb` copy is ~15x slower on AMD when the target is 0-63 bytes past the source
 * modulo 4096, which two fresh Buffers of 128 KiB or more (each 16 bytes into its own mapping) always
 * are; real message buffers and socket chunks have no such relation.
 */
function copyPair (size: number, offset: number): [src: Buffer, dst: Buffer] {
  const dstStart = Math.ceil((offset + size) / 4096) * 4096 + offset + 1024
  const whole = Buffer.alloc(dstStart + size)
  fill(whole)
  return [whole.subarray(offset, offset + size), whole.subarray(dstStart)]
}

function fill (data: Buffer): void {
  for (let i = 0; i < data.length; i++) data[i] = i * 31
}

/** In place: the current JS loop, the WebAssembly path with its two copies, and applyMask as shipped. */
export function inPlaceVariants (simd: SimdMasker): Variant[] {
  return [
    { name: 'JS', prepare: (size, offset) => { const data = payload(size, offset); return () => applyMaskJs(data, KEY, 1) } },
    { name: 'WASM', prepare: (size, offset) => { const data = payload(size, offset); return () => simd.mask(data, KEY, 1) } },
    { name: 'applyMask', prepare: (size, offset) => { const data = payload(size, offset); return () => applyMask(data, KEY, 1) } }
  ]
}

/**
 * Into a second buffer, as when a message is assembled from several chunks: copy then unmask in place,
 * or unmask while copying. Source and target agree modulo 4, so the JS one-pass loop gets matching
 * 32-bit alignment (its best case).
 */
export function copyVariants (simd: SimdMasker): Variant[] {
  const copyThen = (mask: (data: Uint8Array) => void) => (size: number, offset: number) => {
    const [src, dst] = copyPair(size, offset)
    return () => { dst.set(src); mask(dst) }
  }
  const fused = (copy: typeof copyUnmaskedJs) => (size: number, offset: number) => {
    const [src, dst] = copyPair(size, offset)
    return () => copy(src, dst, 0, KEY, 1)
  }
  return [
    { name: 'copy+JS', prepare: copyThen((data) => applyMaskJs(data, KEY, 1)) },
    { name: 'JS copyUnmasked', prepare: fused(copyUnmaskedJs) },
    { name: 'copy+WASM', prepare: copyThen((data) => simd.mask(data, KEY, 1)) },
    { name: 'WASM copyUnmasked', prepare: fused((src, dst, dstOffset, key, phase) => simd.copyUnmasked(src, dst, dstOffset, key, phase)) }
  ]
}
