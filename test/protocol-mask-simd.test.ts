import { execFileSync } from 'node:child_process'
import t from 'tap'
import { applyMask, applyMaskJs, SIMD_MASK_MIN, useSimdMasker } from '../lib/protocol/mask.js'
import { loadSimdMasker, SIMD_CHUNK_SIZE, SIMD_MASK_MODULE, simdMasker, type SimdMasker, type WebAssemblyApi } from '../lib/protocol/mask-simd.js'
import { prng, randomBytes } from './helpers/frames.js'

/** The obvious byte loop every path must match. */
function naiveMask (data: Uint8Array, key: Uint8Array, phase: number): void {
  for (let i = 0; i < data.length; i++) data[i] = data[i]! ^ key[(phase + i) % 4]!
}

const GUARD = 8
const KIB = 1024

t.test('the module validates and loads on this Node', async (t) => {
  const api = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly
  t.ok(api.validate(SIMD_MASK_MODULE), 'WebAssembly.validate accepts the bytes')
  t.ok(simdMasker !== undefined, 'simdMasker is loaded at import')
  t.ok(loadSimdMasker() !== undefined, 'and can be loaded again')
})

/** Every way of masking, each on its own copy of `length` bytes at `align` into a guarded buffer. */
const paths: Array<[string, (data: Uint8Array, key: Uint8Array, phase: number) => number]> = [
  ['applyMaskJs', applyMaskJs],
  ['simdMasker.mask', (data, key, phase) => simdMasker!.mask(data, key, phase)],
  ['applyMask', applyMask],
  ['applyMask without SIMD', (data, key, phase) => {
    const previous = useSimdMasker(undefined)
    try {
      return applyMask(data, key, phase)
    } finally {
      useSimdMasker(previous)
    }
  }]
]

/** Lengths around the SIMD lanes, the dispatch threshold and the chunk size, then random ones up to 300 KiB. */
function testLengths (random: () => number): number[] {
  const edges = [0, 1, 3, 4, 15, 16, 17, 63, 64, 65, 127, 128, 129, SIMD_MASK_MIN - 1, SIMD_MASK_MIN, SIMD_MASK_MIN + 1,
    SIMD_CHUNK_SIZE - 1, SIMD_CHUNK_SIZE, SIMD_CHUNK_SIZE + 1, 2 * SIMD_CHUNK_SIZE + 5, 300 * KIB]
  const randoms = Array.from({ length: 96 }, (_, i) => Math.floor(random() * (i % 2 === 0 ? 300 * KIB : 4 * KIB)))
  return [...edges, ...randoms]
}

t.test('every path equals a byte loop for many lengths, byteOffsets 0..7 and phases 0..3', async (t) => {
  const random = prng(11)
  const keys = [randomBytes(random, 4), Uint8Array.of(0, 0, 0, 0), Uint8Array.of(0xff, 0xff, 0xff, 0xff), Uint8Array.of(1, 2, 4, 128)]
  const wrong: string[] = []
  let cases = 0
  for (const [index, length] of testLengths(random).entries()) {
    // Small lengths get every alignment and phase; large ones one of the 32 combinations each, in turn.
    const combos = length <= 4 * KIB ? [...Array(32).keys()] : [index % 32]
    for (const combo of combos) {
      const align = combo % 8
      const phase = combo >> 3
      const key = keys[index % keys.length]!
      const original = randomBytes(random, GUARD + align + length + GUARD)
      const expected = Buffer.from(original)
      naiveMask(expected.subarray(GUARD + align, GUARD + align + length), key, phase)
      for (const [name, mask] of paths) {
        const memory = Buffer.from(original)
        const data = memory.subarray(GUARD + align, GUARD + align + length)
        const next = mask(data, key, phase)
        const label = `${name} ${length}/${align}/${phase}`
        if (next !== (phase + length) % 4) wrong.push(`${label}: next phase ${next}`)
        if (!memory.equals(expected)) wrong.push(`${label}: bytes (or guard bytes) differ`)
      }
      cases++
    }
  }
  t.ok(cases > 1000, `${cases} cases`)
  t.same(wrong, [])
})

t.test('copyUnmasked writes the unmasked bytes at dstOffset and leaves src and the rest of dst alone', async (t) => {
  const random = prng(12)
  const masker = simdMasker!
  const wrong: string[] = []
  for (const [index, length] of testLengths(random).entries()) {
    const phase = index % 4
    const srcAlign = index % 8
    const dstOffset = Math.floor(random() * 8) + (index % 3 === 0 ? 0 : Math.floor(random() * 4000))
    const key = randomBytes(random, 4)
    const srcMemory = randomBytes(random, srcAlign + length + GUARD)
    const src = srcMemory.subarray(srcAlign, srcAlign + length)
    const srcBefore = Buffer.from(srcMemory)
    const dst = randomBytes(random, dstOffset + length + GUARD)
    const expected = Buffer.from(dst)
    expected.set(src, dstOffset)
    naiveMask(expected.subarray(dstOffset, dstOffset + length), key, phase)

    const next = masker.copyUnmasked(src, dst, dstOffset, key, phase)
    const label = `${length}/${srcAlign}/${dstOffset}/${phase}`
    if (next !== (phase + length) % 4) wrong.push(`${label}: next phase ${next}`)
    if (!dst.equals(expected)) wrong.push(`${label}: dst differs`)
    if (!srcMemory.equals(srcBefore)) wrong.push(`${label}: src changed`)
  }
  t.same(wrong, [])
})

t.test('copyUnmasked refuses a dst without room, before writing', async (t) => {
  const masker = simdMasker!
  const key = Uint8Array.of(1, 2, 3, 4)
  const dst = Buffer.alloc(100)
  t.throws(() => masker.copyUnmasked(Buffer.alloc(101, 9), dst, 0, key, 0), RangeError)
  t.throws(() => masker.copyUnmasked(Buffer.alloc(SIMD_CHUNK_SIZE + 1, 9), Buffer.alloc(SIMD_CHUNK_SIZE), 0, key, 0), RangeError)
  t.throws(() => masker.copyUnmasked(Buffer.alloc(10, 9), dst, 91, key, 0), RangeError)
  t.throws(() => masker.copyUnmasked(Buffer.alloc(10, 9), dst, -1, key, 0), RangeError)
  t.ok(dst.equals(Buffer.alloc(100)), 'dst untouched')
  t.equal(masker.copyUnmasked(Buffer.alloc(10, 9), dst, 90, key, 3), 1, 'exactly the room it needs is enough')
})

t.test('masking in pieces across chunk boundaries with the returned phase equals masking at once', async (t) => {
  const random = prng(13)
  const key = randomBytes(random, 4)
  const source = randomBytes(random, 3 * SIMD_CHUNK_SIZE + 77)
  const whole = Buffer.from(source)
  naiveMask(whole, key, 2)
  for (const [name, mask] of paths) {
    const pieces = Buffer.from(source)
    let phase = 2
    for (let at = 0; at < pieces.length;) {
      const size = Math.min(pieces.length - at, Math.floor(random() * 1.5 * SIMD_CHUNK_SIZE))
      phase = mask(pieces.subarray(at, at + size), key, phase)
      at += size
    }
    t.ok(pieces.equals(whole), name)
    t.equal(phase, (2 + source.length) % 4, `${name} phase`)
  }
})

t.test('applyMask hands SIMD_MASK_MIN bytes and more to the masker, fewer to the JS loop', async (t) => {
  const calls: number[] = []
  const spy: SimdMasker = {
    mask: (data, key, phase) => { calls.push(data.length); return simdMasker!.mask(data, key, phase) },
    copyUnmasked: (src, dst, dstOffset, key, phase) => simdMasker!.copyUnmasked(src, dst, dstOffset, key, phase)
  }
  const previous = useSimdMasker(spy)
  try {
    const key = Uint8Array.of(5, 6, 7, 8)
    applyMask(Buffer.alloc(SIMD_MASK_MIN - 1), key)
    applyMask(Buffer.alloc(SIMD_MASK_MIN), key)
    applyMask(Buffer.alloc(SIMD_MASK_MIN * 3), key, 1)
  } finally {
    t.equal(useSimdMasker(previous), spy, 'useSimdMasker returns the masker it replaces')
  }
  t.same(calls, [SIMD_MASK_MIN, SIMD_MASK_MIN * 3])
})

t.test('loadSimdMasker falls back to undefined instead of throwing', async (t) => {
  t.equal(loadSimdMasker(SIMD_MASK_MODULE, null), undefined, 'no WebAssembly global')
  t.equal(loadSimdMasker(Uint8Array.of(0, 0x61, 0x73, 0x6d, 2, 0, 0, 0)), undefined, 'a module the engine rejects (as engines without SIMD reject this one)')
  t.equal(loadSimdMasker(SIMD_MASK_MODULE.subarray(0, 8)), undefined, 'a valid module without the mask export')
  const fake = (instance: () => { exports: Record<string, unknown> }): WebAssemblyApi => ({
    validate: () => true,
    Module: class {},
    Instance: function Instance () { return instance() } as unknown as WebAssemblyApi['Instance']
  })
  t.equal(loadSimdMasker(SIMD_MASK_MODULE, fake(() => { throw new RangeError('out of memory') })), undefined, 'instantiation fails')
  t.equal(loadSimdMasker(SIMD_MASK_MODULE, fake(() => ({ exports: { mask () {} } }))), undefined, 'no memory export')
  t.equal(loadSimdMasker(SIMD_MASK_MODULE, fake(() => ({ exports: { mask () {}, memory: { buffer: new ArrayBuffer(4096) } } }))), undefined,
    'a memory too small to stage a chunk')
})

t.test('without WebAssembly (node --jitless) the module imports and applyMask still masks', async (t) => {
  const script = `
    const { applyMask } = require(process.argv[1])
    const { simdMasker } = require(process.argv[2])
    const key = Uint8Array.of(0x10, 0x20, 0x30, 0x40)
    const data = Buffer.alloc(300 * 1024 + 3, 0xaa)
    const phase = applyMask(data.subarray(1), key, 3)
    const ok = data[0] === 0xaa && data.subarray(1).every((b, i) => b === (0xaa ^ key[(3 + i) % 4]))
    console.log(JSON.stringify({ webAssembly: typeof WebAssembly, simd: simdMasker !== undefined, phase, ok }))`
  const output = execFileSync(process.execPath, ['--jitless', '--import', 'tsx', '-e', script,
    require.resolve('../lib/protocol/mask.js'), require.resolve('../lib/protocol/mask-simd.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  t.same(JSON.parse(output), { webAssembly: 'undefined', simd: false, phase: (3 + 300 * 1024 + 2) % 4, ok: true })
})
