/*
 * A WebAssembly module that XORs a region of its own memory with a 4-byte mask, 16 bytes at a time
 * with 128-bit SIMD. It is assembled by hand because the package ships no build step for .wat files.
 * The text it encodes:
 *
 * (module
 *   (type $t (func (param i32 i32 i32)))
 *   (memory $memory 2 2)
 *   (export "memory" (memory $memory))
 *   (export "mask" (func $mask))
 *   (func $mask (type $t) (param $ptr i32) (param $len i32) (param $key i32)
 *     (local $end i32) (local $k v128)
 *     (local.set $end (i32.add (local.get $ptr) (local.get $len)))
 *     (local.set $k (i32x4.splat (local.get $key)))
 *     (block $b64 (loop $l64
 *       (br_if $b64 (i32.lt_u (i32.sub (local.get $end) (local.get $ptr)) (i32.const 64)))
 *       (v128.store align=16 offset=0 (local.get $ptr)
 *         (v128.xor (v128.load align=16 offset=0 (local.get $ptr)) (local.get $k)))
 *       ;; the same for offset=16, offset=32 and offset=48
 *       (local.set $ptr (i32.add (local.get $ptr) (i32.const 64)))
 *       (br $l64)))
 *     (block $b16 (loop $l16
 *       (br_if $b16 (i32.lt_u (i32.sub (local.get $end) (local.get $ptr)) (i32.const 16)))
 *       (v128.store align=16 (local.get $ptr)
 *         (v128.xor (v128.load align=16 (local.get $ptr)) (local.get $k)))
 *       (local.set $ptr (i32.add (local.get $ptr) (i32.const 16)))
 *       (br $l16)))
 *     (block $b1 (loop $l1
 *       (br_if $b1 (i32.ge_u (local.get $ptr) (local.get $end)))
 *       (i32.store8 (local.get $ptr) (i32.xor (i32.load8_u (local.get $ptr)) (local.get $key)))
 *       (local.set $key (i32.rotr (local.get $key) (i32.const 8)))
 *       (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
 *       (br $l1)))))
 *
 * $key holds the mask bytes in memory order (WebAssembly is little-endian on every host), so the
 * byte loop takes its low byte and rotates the next one in. Four 16-byte lanes per iteration of
 * $l64 measured twice as fast as $l16 alone.
 */

/** The module above in binary form, for tests that check it validates. */
export const SIMD_MASK_MODULE = Uint8Array.of(
  // Header: "\0asm", version 1.
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // Type section (1), 7 bytes: one type, func (i32 i32 i32) -> ().
  0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00,
  // Function section (3), 2 bytes: one function, of type 0.
  0x03, 0x02, 0x01, 0x00,
  // Memory section (5), 4 bytes: one memory, limits with a maximum (0x01), min 2 pages, max 2 pages.
  0x05, 0x04, 0x01, 0x01, 0x02, 0x02,
  // Export section (7), 17 bytes: "memory" -> memory 0, "mask" -> func 0.
  0x07, 0x11, 0x02,
  0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00,
  0x04, 0x6d, 0x61, 0x73, 0x6b, 0x00, 0x00,
  // Code section (10), 196 bytes (LEB128 0xc4 0x01): one body of 193 bytes (0xc1 0x01).
  0x0a, 0xc4, 0x01, 0x01, 0xc1, 0x01,
  // Locals: 1 x i32 ($end = 3), 1 x v128 ($k = 4).
  0x02, 0x01, 0x7f, 0x01, 0x7b,
  // $end = $ptr + $len; $k = i32x4.splat($key)
  0x20, 0x00, 0x20, 0x01, 0x6a, 0x21, 0x03,
  0x20, 0x02, 0xfd, 0x11, 0x21, 0x04,
  // block $b64, loop $l64: br_if $b64 when $end - $ptr < 64
  0x02, 0x40, 0x03, 0x40,
  0x20, 0x03, 0x20, 0x00, 0x6b, 0x41, 0xc0, 0x00, 0x49, 0x0d, 0x01,
  // Four times: $ptr, v128.load (0xfd 0x00, align 2^4, offset N) of $ptr, $k, v128.xor (0xfd 0x51), v128.store (0xfd 0x0b).
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x04, 0x00, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x04, 0x00,
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x04, 0x10, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x04, 0x10,
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x04, 0x20, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x04, 0x20,
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x04, 0x30, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x04, 0x30,
  // $ptr += 64; br $l64; end loop; end block
  0x20, 0x00, 0x41, 0xc0, 0x00, 0x6a, 0x21, 0x00,
  0x0c, 0x00, 0x0b, 0x0b,
  // block $b16, loop $l16: br_if $b16 when $end - $ptr < 16
  0x02, 0x40, 0x03, 0x40,
  0x20, 0x03, 0x20, 0x00, 0x6b, 0x41, 0x10, 0x49, 0x0d, 0x01,
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x04, 0x00, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x04, 0x00,
  // $ptr += 16; br $l16; end loop; end block
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00,
  0x0c, 0x00, 0x0b, 0x0b,
  // block $b1, loop $l1: br_if $b1 when $ptr >= $end (unsigned)
  0x02, 0x40, 0x03, 0x40,
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x01,
  // i32.store8 $ptr (i32.load8_u $ptr xor $key), both align 1, offset 0
  0x20, 0x00, 0x20, 0x00, 0x2d, 0x00, 0x00, 0x20, 0x02, 0x73, 0x3a, 0x00, 0x00,
  // $key = rotr($key, 8); $ptr += 1; br $l1; end loop; end block
  0x20, 0x02, 0x41, 0x08, 0x78, 0x21, 0x02,
  0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00,
  0x0c, 0x00, 0x0b, 0x0b,
  // end of the function body
  0x0b
)

/**
 * Bytes per round trip through WebAssembly memory: a multiple of 16 (whole SIMD lanes) and of 4, so
 * every chunk but the last starts at mask phase 0 relative to the first.
 */
export const SIMD_CHUNK_SIZE = 65536

/*
 * Where chunks are staged in the module's memory. glibc's memmove (2.36 here) switches to `rep movsb`
 * above about 2 KiB, and on the AMD EPYC this was measured on that ran ~15x slower whenever the
 * destination was 0-40 bytes past the source modulo 4096. The module's memory starts on a page, and
 * mmap-backed Buffers start 16 bytes into one (after malloc's header), so staging at offset 0 would
 * hit that case for every such Buffer and any payload just behind a frame header in it. Mid-page
 * leaves the slow case to data that happens to start within about 32 bytes of a page's middle.
 */
const STAGE = 2048

/** The subset of the WebAssembly JS API this file uses; the global is absent under `--jitless`. */
export interface WebAssemblyApi {
  validate (bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => { exports: Record<string, unknown> }
}

/** Masking routines that run in WebAssembly; each copies through the module's memory in chunks. */
export interface SimdMasker {
  /** The same contract as `applyMask`: XORs `data` in place from mask position `phase`, returns the next phase. */
  mask (data: Uint8Array, key: Uint8Array, phase: number): number
  /**
   * Writes `src` XORed with `key` (from mask position `phase`) into `dst` at `dstOffset`, leaving `src`
   * as it was, and returns the phase after `src`. Throws a RangeError, writing nothing, when `dst` has
   * no room for `src.length` bytes at `dstOffset`. The target may be `src` itself (that is `mask`) but
   * must not otherwise overlap it: chunks are written before later ones are read.
   */
  copyUnmasked (src: Uint8Array, dst: Uint8Array, dstOffset: number, key: Uint8Array, phase: number): number
}

/** The key rotated so that its first byte in memory order is `key[phase]`. */
function keyWord (key: Uint8Array, phase: number): number {
  return key[phase & 3]! | (key[(phase + 1) & 3]! << 8) | (key[(phase + 2) & 3]! << 16) | (key[(phase + 3) & 3]! << 24)
}

/**
 * Compiles and instantiates `bytes` synchronously with `api` (the WebAssembly global, null when it
 * is absent) and wraps its `mask` export. Returns undefined, never throws, when WebAssembly is
 * missing, the engine rejects the module (no SIMD), or instantiation fails (e.g. memory cannot be reserved).
 */
export function loadSimdMasker (
  bytes: Uint8Array = SIMD_MASK_MODULE,
  api: WebAssemblyApi | null = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly ?? null
): SimdMasker | undefined {
  let run: (ptr: number, length: number, key: number) => void
  let stage: Uint8Array
  try {
    if (api === null || !api.validate(bytes)) return undefined
    // Not named `exports`: tsc's CommonJS output would then read SIMD_CHUNK_SIZE from it.
    const wasm = new api.Instance(new api.Module(bytes)).exports
    if (typeof wasm.mask !== 'function') return undefined
    run = wasm.mask as typeof run
    // The memory's maximum equals its size, so this view is never detached by a grow.
    stage = new Uint8Array((wasm.memory as { buffer: ArrayBuffer }).buffer, STAGE, SIMD_CHUNK_SIZE)
  } catch {
    return undefined
  }

  function copyUnmasked (src: Uint8Array, dst: Uint8Array, dstOffset: number, key: Uint8Array, phase: number): number {
    const length = src.length
    if (!(dstOffset >= 0 && dstOffset + length <= dst.length)) throw new RangeError('copyUnmasked: dst is too small')
    const word = keyWord(key, phase)
    for (let at = 0; at < length; at += SIMD_CHUNK_SIZE) {
      const size = Math.min(SIMD_CHUNK_SIZE, length - at)
      stage.set(size === length ? src : src.subarray(at, at + size))
      run(STAGE, size, word)
      dst.set(size === SIMD_CHUNK_SIZE ? stage : stage.subarray(0, size), dstOffset + at)
    }
    return (phase + length) & 3
  }
  return {
    mask: (data, key, phase) => copyUnmasked(data, data, 0, key, phase),
    copyUnmasked
  }
}

/** The masker built from this file's module, or undefined where WebAssembly SIMD is unavailable. */
export const simdMasker: SimdMasker | undefined = loadSimdMasker()
