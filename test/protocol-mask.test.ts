import t from 'tap'
import { applyMask, nextMaskKey } from '../lib/protocol/mask.js'
import { prng, randomBytes } from './helpers/frames.js'

/** The obvious byte loop applyMask must match. */
function naiveMask (data: Uint8Array, key: Uint8Array, phase: number): void {
  for (let i = 0; i < data.length; i++) data[i] = data[i]! ^ key[(phase + i) % 4]!
}

const GUARD = 8

t.test('applyMask equals a byte loop for every length 0..300, alignment and phase', async (t) => {
  const random = prng(1)
  const keys = [Uint8Array.of(0x37, 0xfa, 0x21, 0x3d), Uint8Array.of(0, 0, 0, 0), Uint8Array.of(0xff, 0xff, 0xff, 0xff), Uint8Array.of(1, 2, 4, 128)]
  const wrong: string[] = []
  let cases = 0
  for (let length = 0; length <= 300; length++) {
    for (let align = 0; align < 4; align++) {
      for (let phase = 0; phase < 4; phase++) {
        const key = keys[(length + align + phase) % keys.length]!
        // An 8-aligned ArrayBuffer with guard bytes on both sides of the view.
        const original = new Uint8Array(new ArrayBuffer(GUARD + align + length + GUARD))
        original.set(randomBytes(random, original.length))
        const memory = new Uint8Array(original.buffer.slice(0))
        const data = new Uint8Array(memory.buffer, GUARD + align, length)
        const expected = original.slice()
        naiveMask(expected.subarray(GUARD + align, GUARD + align + length), key, phase)
        cases++

        const next = applyMask(data, key, phase)
        if (data.byteOffset % 4 !== align) wrong.push(`${length}/${align}/${phase}: bad test alignment`)
        if (next !== (phase + length) % 4) wrong.push(`${length}/${align}/${phase}: next phase ${next}`)
        if (!Buffer.from(memory).equals(Buffer.from(expected))) wrong.push(`${length}/${align}/${phase}: bytes (or guard bytes) differ`)

        applyMask(data, key, phase)
        if (!Buffer.from(memory).equals(Buffer.from(original))) wrong.push(`${length}/${align}/${phase}: not its own inverse`)
      }
    }
  }
  t.equal(cases, 301 * 16)
  t.same(wrong, [], `${cases} cases`)
})

t.test('the phase argument defaults to 0', async (t) => {
  const key = Uint8Array.of(1, 2, 3, 4)
  const data = Buffer.alloc(40, 0)
  t.equal(applyMask(data, key), 0)
  t.same([...data.subarray(0, 8)], [1, 2, 3, 4, 1, 2, 3, 4])
  const short = Buffer.alloc(3, 0)
  t.equal(applyMask(short, key), 3)
  t.same([...short], [1, 2, 3])
})

t.test('masking in pieces with the returned phase equals masking at once', async (t) => {
  const random = prng(2)
  const key = randomBytes(random, 4)
  const wrong: string[] = []
  for (let round = 0; round < 300; round++) {
    const length = Math.floor(random() * 400)
    const source = randomBytes(random, length)
    const whole = Buffer.from(source)
    applyMask(whole, key)
    const pieces = Buffer.from(source)
    let phase = 0
    let at = 0
    while (at < length) {
      const size = Math.min(length - at, Math.floor(random() * 70))
      phase = applyMask(pieces.subarray(at, at + size), key, phase)
      at += size
    }
    if (!pieces.equals(whole)) wrong.push(`round ${round}`)
  }
  t.same(wrong, [])
})

t.test('views with odd offsets into shared memory, and a key that is a view', async (t) => {
  const random = prng(3)
  const pool = randomBytes(random, 5000)
  const keyPool = Buffer.from([9, 9, 9, 0xa1, 0xb2, 0xc3, 0xd4, 9])
  const key = keyPool.subarray(3, 7)
  for (const [start, end] of [[1, 4001], [3, 3], [5, 40], [6, 37], [7, 4999]] as const) {
    const copy = Buffer.from(pool)
    const expected = Buffer.from(pool)
    naiveMask(expected.subarray(start, end), key, 1)
    t.equal(applyMask(copy.subarray(start, end), key, 1), (1 + end - start) % 4)
    t.ok(copy.equals(expected), `[${start}, ${end})`)
  }
})

t.test('a large payload', async (t) => {
  const random = prng(4)
  const key = randomBytes(random, 4)
  const source = randomBytes(random, (1 << 20) + 3)
  const fast = Buffer.from(source)
  const slow = Buffer.from(source)
  t.equal(applyMask(fast.subarray(1), key, 2), (2 + source.length - 1) % 4)
  naiveMask(slow.subarray(1), key, 2)
  t.ok(fast.equals(slow))
})

t.test('nextMaskKey', async (t) => {
  let previous: Buffer | undefined
  let repeats = 0
  let wrongLength = 0
  const seen = new Set<number>()
  const bytesSeen = new Set<number>()
  for (let i = 0; i < 10000; i++) {
    const key = nextMaskKey()
    if (!Buffer.isBuffer(key) || key.length !== 4) wrongLength++
    const value = key.readUInt32BE(0)
    if (previous !== undefined && previous.readUInt32BE(0) === value) repeats++
    previous = Buffer.from(key)
    seen.add(value)
    for (const byte of key) bytesSeen.add(byte)
  }
  t.equal(wrongLength, 0, 'always 4 bytes')
  t.equal(repeats, 0, 'never the same key twice in a row')
  t.ok(seen.size > 9980, `practically all distinct (${seen.size} of 10000)`)
  t.equal(bytesSeen.size, 256, 'every byte value shows up')

  const key = nextMaskKey()
  const kept = Buffer.from(key)
  const data = Buffer.from('abcdefgh')
  applyMask(data, key)
  applyMask(data, kept)
  t.equal(data.toString(), 'abcdefgh', 'a key masks like its copy')
})
