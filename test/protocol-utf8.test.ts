import t from 'tap'
import { isUtf8 } from 'node:buffer'
import { Utf8Validator } from '../lib/protocol/utf8.js'
import { prng } from './helpers/frames.js'

/** Feeds `pieces` and returns the index of the first piece push() rejected, or -1. */
function firstRejected (validator: Utf8Validator, pieces: readonly Uint8Array[]): number {
  for (let i = 0; i < pieces.length; i++) {
    if (!validator.push(pieces[i]!)) return i
  }
  return -1
}

/** Whole-message verdict of a fresh validator fed `pieces`. */
function validates (pieces: readonly Uint8Array[]): boolean {
  const validator = new Utf8Validator()
  return firstRejected(validator, pieces) === -1 && validator.end()
}

function bytewise (bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (byte) => Uint8Array.of(byte))
}

/** UTF-8 of a code point, written out by hand (no TextEncoder) so the oracle is independent. */
function encode (cp: number): number[] {
  if (cp < 0x80) return [cp]
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)]
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)]
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)]
}

const pack = (bytes: ArrayLike<number>): number => {
  let key = bytes.length
  for (let i = 0; i < bytes.length; i++) key = key * 256 + bytes[i]!
  return key
}

/**
 * Every proper, non-empty prefix of the encoding of every scalar value (U+0080..U+10FFFF, no
 * surrogates). The last 6 bits of a code point only reach its last byte, so a step of 64 meets them all.
 */
const PROPER_PREFIXES = new Set<number>()
for (let cp = 0x80; cp <= 0x10ffff; cp += 64) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue
  const bytes = encode(cp)
  for (let n = 1; n < bytes.length; n++) PROPER_PREFIXES.add(pack(bytes.slice(0, n)))
}

/** Whether some bytes appended to `prefix` can make valid UTF-8 (the oracle for fail-fast). */
function canBecomeValid (prefix: Uint8Array): boolean {
  for (let k = 0; k <= Math.min(3, prefix.length); k++) {
    const head = prefix.subarray(0, prefix.length - k)
    if (isUtf8(head) && (k === 0 || PROPER_PREFIXES.has(pack(prefix.subarray(prefix.length - k))))) return true
  }
  return false
}

t.test('the oracle itself', async (t) => {
  // 51 lead bytes (C2-DF, E0-EF, F0-F4); 960 + 256 two-byte prefixes of 3- and 4-byte characters; 16384 three-byte ones
  t.equal(PROPER_PREFIXES.size, 51 + 960 + 256 + 16384, 'every proper prefix')
  t.ok(canBecomeValid(Buffer.from([0x61, 0xe2, 0x82])))
  t.ok(canBecomeValid(Buffer.from([0xf4, 0x8f])))
  t.notOk(canBecomeValid(Buffer.from([0xf4, 0x90])))
  t.notOk(canBecomeValid(Buffer.from([0xed, 0xa0])))
  t.notOk(canBecomeValid(Buffer.from([0xc0])))
})

const INVALID: Array<[string, number[], number]> = [
  // name, bytes, index of the byte at which a byte-by-byte feed must fail
  ['overlong C0 80', [0xc0, 0x80], 0],
  ['overlong C1 BF', [0xc1, 0xbf], 0],
  ['overlong E0 80 80', [0xe0, 0x80, 0x80], 1],
  ['overlong E0 9F BF', [0xe0, 0x9f, 0xbf], 1],
  ['overlong F0 80 80 80', [0xf0, 0x80, 0x80, 0x80], 1],
  ['overlong F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf], 1],
  ['surrogate ED A0 80', [0xed, 0xa0, 0x80], 1],
  ['surrogate ED BF BF', [0xed, 0xbf, 0xbf], 1],
  ['above U+10FFFF F4 90 80 80', [0xf4, 0x90, 0x80, 0x80], 1],
  ['F5', [0xf5, 0x80, 0x80, 0x80], 0],
  ['F7 BF BF BF', [0xf7, 0xbf, 0xbf, 0xbf], 0],
  ['F8', [0xf8, 0x88, 0x80, 0x80, 0x80], 0],
  ['FC', [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80], 0],
  ['FE', [0xfe], 0],
  ['FF', [0xff], 0],
  ['lone continuation 80', [0x80], 0],
  ['lone continuation BF after ASCII', [0x41, 0xbf], 1],
  ['extra continuation after a 2-byte character', [0xc2, 0xa9, 0x80], 2],
  ['2-byte lead then ASCII', [0xc2, 0x41], 1],
  ['3-byte lead, continuation, then ASCII', [0xe2, 0x82, 0x41], 2],
  ['4-byte lead then another lead', [0xf0, 0x9f, 0xf0], 2],
  ['Autobahn 6.3.1 (κόσμε with a surrogate)', [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64], 12]
]

const TRUNCATED: Array<[string, number[]]> = [
  ['2-byte character cut', [0x41, 0xc2]],
  ['3-byte character cut after 1', [0x41, 0xe2]],
  ['3-byte character cut after 2', [0x41, 0xe2, 0x82]],
  ['4-byte character cut after 1', [0xf0]],
  ['4-byte character cut after 3', [0x41, 0xf0, 0x9f, 0x98]],
  ['U+10FFFF cut after 3', [0xf4, 0x8f, 0xbf]]
]

const VALID: Array<[string, string]> = [
  ['empty', ''],
  ['U+0000', '\u0000'],
  ['U+007F', '\u007f'],
  ['U+0080', '\u0080'],
  ['U+07FF', '\u07ff'],
  ['U+0800', '\u0800'],
  ['U+D7FF', '\ud7ff'],
  ['U+E000', '\ue000'],
  ['U+FFFD', '\ufffd'],
  ['U+FFFF', '\uffff'],
  ['U+10000', '\u{10000}'],
  ['U+10FFFF', '\u{10ffff}'],
  ['Autobahn κόσμε', 'κόσμε'],
  ['all edges together', '\u0000\u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}κόσμε'],
  ['long mixed text', 'Hello κόσμε € 😀 '.repeat(40)]
]

t.test('invalid sequences are rejected, at the first impossible byte', async (t) => {
  for (const [name, bytes, failAt] of INVALID) {
    const buf = Buffer.from(bytes)
    t.equal(isUtf8(buf), false, `${name}: isUtf8 agrees`)
    const whole = new Utf8Validator()
    t.equal(whole.push(buf), false, `${name}: one push fails`)
    t.equal(firstRejected(new Utf8Validator(), bytewise(buf)), failAt, `${name}: byte by byte fails at byte ${failAt}`)
    const padded = Buffer.concat([Buffer.from('ok κόσμε '), buf, Buffer.from(' tail')])
    t.equal(validates([padded]), false, `${name}: inside text`)
    t.equal(validates(bytewise(padded)), false, `${name}: inside text, byte by byte`)
  }
})

t.test('text that stops inside a character passes push and fails end', async (t) => {
  for (const [name, bytes] of TRUNCATED) {
    const validator = new Utf8Validator()
    t.equal(validator.push(Buffer.from(bytes)), true, `${name}: push`)
    t.equal(validator.end(), false, `${name}: end`)
    const bytewiseValidator = new Utf8Validator()
    t.equal(firstRejected(bytewiseValidator, bytewise(Buffer.from(bytes))), -1, `${name}: byte by byte push`)
    t.equal(bytewiseValidator.end(), false, `${name}: byte by byte end`)
  }
})

t.test('valid edge cases pass however they are split', async (t) => {
  for (const [name, text] of VALID) {
    const bytes = Buffer.from(text)
    t.equal(validates([bytes]), true, `${name}: one piece`)
    t.equal(validates(bytewise(bytes)), true, `${name}: byte by byte`)
    let allCuts = true
    for (let cut = 0; cut <= bytes.length; cut++) {
      if (!validates([bytes.subarray(0, cut), bytes.subarray(cut)])) allCuts = false
    }
    t.ok(allCuts, `${name}: every 2-piece split`)
  }
  t.equal(validates([]), true, 'no piece at all is valid')
})

t.test('fail-fast across pieces', async (t) => {
  const v1 = new Utf8Validator()
  t.equal(v1.push(Buffer.from([0x61, 0x62, 0xf4, 0x90])), false, 'a piece ending in F4 90 fails at once')
  const v2 = new Utf8Validator()
  t.equal(v2.push(Buffer.from([0x61, 0xe2, 0x82])), true, 'a piece ending in E2 82 passes')
  t.equal(v2.end(), false, 'but is not a complete text')
  t.equal(v2.push(Buffer.from([0xac, 0x62])), true, 'the next piece completes €')
  t.equal(v2.end(), true)
  const v3 = new Utf8Validator()
  t.equal(v3.push(Buffer.from([0xe2])), true)
  t.equal(v3.push(Buffer.from([0x82])), true)
  t.equal(v3.push(Buffer.from([0x41])), false, 'ASCII where a continuation byte must come')
  const v4 = new Utf8Validator()
  t.equal(v4.push(Buffer.from([0xf0, 0x9f])), true)
  t.equal(v4.push(Buffer.alloc(0)), true, 'an empty piece changes nothing')
  t.equal(v4.push(Buffer.from([0x98, 0x80, 0xed, 0x9f])), true, 'finishes 😀, starts U+D7xx')
  t.equal(v4.push(Buffer.from([0xa0])), true)
  t.equal(v4.end(), true)
  const v5 = new Utf8Validator()
  t.equal(v5.push(Buffer.from([0xed])), true)
  t.equal(v5.push(Buffer.from([0xa0])), false, 'a surrogate split over pieces')
  const v6 = new Utf8Validator()
  t.equal(v6.push(Buffer.from([0xf0, 0x9f, 0x98])), true)
  t.equal(v6.push(Buffer.from([0x80, 0x80])), false, 'a continuation byte too many right after a split character')
})

t.test('reset forgets a partial character', async (t) => {
  const validator = new Utf8Validator()
  t.equal(validator.push(Buffer.from([0xe2, 0x82])), true)
  validator.reset()
  t.equal(validator.end(), true, 'no character is open after reset')
  t.equal(validator.push(Buffer.from([0x41])), true, 'ASCII is fine after reset')
  validator.reset()
  t.equal(validator.push(Buffer.from([0xed])), true)
  validator.reset()
  t.equal(validator.push(Buffer.from([0xf0, 0xa0, 0x80, 0x80])), true, 'the upper bound ED set is gone (U+20000)')
  validator.reset()
  t.equal(validator.push(Buffer.from([0xe0])), true)
  validator.reset()
  t.equal(validator.push(Buffer.from([0xed, 0x80, 0x80])), true, 'the lower bound E0 set is gone (U+D000)')
  validator.reset()
  t.equal(validator.push(Buffer.from([0x80])), false, 'a lone continuation byte after reset')
})

t.test('every 1- and 2-byte string agrees with isUtf8, whole and split', async (t) => {
  const wrong: string[] = []
  for (let a = 0; a < 256; a++) {
    const one = Uint8Array.of(a)
    if (validates([one]) !== isUtf8(one)) wrong.push(a.toString(16))
    for (let b = 0; b < 256; b++) {
      const two = Uint8Array.of(a, b)
      const expected = isUtf8(two)
      if (validates([two]) !== expected || validates([two.subarray(0, 1), two.subarray(1)]) !== expected) {
        wrong.push(`${a.toString(16)} ${b.toString(16)}`)
      }
      const v = new Utf8Validator()
      if (v.push(two) !== canBecomeValid(two)) wrong.push(`fail-fast ${a.toString(16)} ${b.toString(16)}`)
    }
  }
  t.same(wrong, [])
})

t.test('3- and 4-byte strings over the interesting byte values agree with isUtf8', async (t) => {
  const values = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc1, 0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5]
  const wrong: string[] = []
  let count = 0
  for (const a of values) {
    for (const b of values) {
      for (const c of values) {
        for (const d of [-1, ...values]) {
          const bytes = d < 0 ? Uint8Array.of(a, b, c) : Uint8Array.of(a, b, c, d)
          count++
          const expected = isUtf8(bytes)
          for (let cut = 0; cut <= bytes.length; cut++) {
            const v = new Utf8Validator()
            const first = v.push(bytes.subarray(0, cut))
            if (first !== canBecomeValid(bytes.subarray(0, cut))) wrong.push(`${Buffer.from(bytes).toString('hex')} cut ${cut}: fail-fast`)
            const verdict = first && v.push(bytes.subarray(cut)) && v.end()
            if (verdict !== expected) wrong.push(`${Buffer.from(bytes).toString('hex')} cut ${cut}`)
          }
        }
      }
    }
  }
  t.same(wrong.slice(0, 20), [], `${count} strings`)
})

/** Random bytes that are mostly almost-valid UTF-8, so both verdicts are common. */
function randomText (random: () => number): Buffer {
  const specials = [0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff]
  const out: number[] = []
  const units = Math.floor(random() * 24)
  for (let u = 0; u < units; u++) {
    const r = random()
    if (r < 0.35) {
      out.push(Math.floor(random() * 0x80))
    } else if (r < 0.8) {
      const range = [[0x80, 0x800], [0x800, 0xd800], [0xe000, 0x10000], [0x10000, 0x110000]][Math.floor(random() * 4)]!
      out.push(...encode(range[0]! + Math.floor(random() * (range[1]! - range[0]!))))
    } else if (r < 0.9) {
      out.push(specials[Math.floor(random() * specials.length)]!)
    } else if (r < 0.95) {
      out.push(Math.floor(random() * 256))
    } else {
      out.push(...encode(0x10000 + Math.floor(random() * 0x100000)).slice(0, 1 + Math.floor(random() * 3)))
    }
  }
  if (out.length > 0 && random() < 0.1) out.pop()
  return Buffer.from(out)
}

t.test('random strings split at random points agree with isUtf8 (seeded)', async (t) => {
  const random = prng(20240611)
  const wrong: string[] = []
  let valid = 0
  const total = 5000
  for (let n = 0; n < total; n++) {
    const bytes = randomText(random)
    const cuts = Array.from({ length: Math.floor(random() * 5) }, () => Math.floor(random() * (bytes.length + 1))).sort((a, b) => a - b)
    const pieces: Buffer[] = []
    let from = 0
    for (const cut of [...cuts, bytes.length]) {
      pieces.push(bytes.subarray(from, cut))
      from = cut
    }
    const expected = isUtf8(bytes)
    if (expected) valid++
    const validator = new Utf8Validator()
    let ok = true
    let seen = 0
    for (const piece of pieces) {
      seen += piece.length
      ok = validator.push(piece)
      if (ok !== canBecomeValid(bytes.subarray(0, seen))) {
        wrong.push(`${bytes.toString('hex')} cuts ${cuts.join(',')}: push after ${seen} bytes gave ${ok}`)
      }
      if (!ok) break
    }
    const verdict = ok && validator.end()
    if (verdict !== expected) wrong.push(`${bytes.toString('hex')} cuts ${cuts.join(',')}: verdict ${verdict}`)
  }
  t.same(wrong.slice(0, 20), [], `${total} strings, each push matches the prefix oracle and the end matches isUtf8`)
  t.ok(valid > total / 5 && valid < total * 4 / 5, `a useful mix: ${valid} of ${total} valid`)
})

t.test('a long valid text pushed in pieces of every size 1..9', async (t) => {
  const bytes = Buffer.from('κόσμε € 😀 \u{10ffff}\u0800 abc '.repeat(50))
  for (let size = 1; size <= 9; size++) {
    const pieces: Buffer[] = []
    for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.subarray(at, at + size))
    t.equal(validates(pieces), true, `pieces of ${size}`)
  }
})
