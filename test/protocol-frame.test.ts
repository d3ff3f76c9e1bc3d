import t from 'tap'
import { MAX_HEADER_SIZE } from '../lib/protocol/constants.js'
import { frameHeaderSize, writeFrameHeader } from '../lib/protocol/frame.js'
import { applyMask } from '../lib/protocol/mask.js'
import { FrameParser, type FrameParserOptions } from '../lib/protocol/parser.js'
import { frameHeader, mergeData, prng, randomBytes, RecordingSink, showEvents } from './helpers/frames.js'

const KEY = Uint8Array.of(0xde, 0xad, 0xbe, 0xef)
const LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 65537, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 53 - 1]

t.test('frameHeaderSize', async (t) => {
  const expected = (length: number): number => length <= 125 ? 2 : length <= 0xffff ? 4 : 10
  for (const length of LENGTHS) {
    t.equal(frameHeaderSize(length, false), expected(length), `${length} unmasked`)
    t.equal(frameHeaderSize(length, true), expected(length) + 4, `${length} masked`)
  }
  t.equal(frameHeaderSize(2 ** 32 + 5, true), MAX_HEADER_SIZE, 'the largest header is MAX_HEADER_SIZE')
})

t.test('writeFrameHeader writes the RFC 6455 encoding', async (t) => {
  for (const length of LENGTHS) {
    for (const masked of [false, true]) {
      for (const [opcode, fin, rsv1] of [[1, true, false], [2, false, true], [0, true, false], [0, false, false], [8, true, false], [9, true, false], [10, true, false]] as const) {
        const name = `length ${length}, ${masked ? 'masked' : 'unmasked'}, opcode ${opcode} fin=${fin} rsv1=${rsv1}`
        const target = Buffer.alloc(20, 0xaa)
        const at = writeFrameHeader(target, 3, opcode, fin, rsv1, length, masked ? KEY : undefined)
        const want = frameHeader({ opcode, fin, rsv1, length, mask: masked ? KEY : undefined })
        t.equal(at, 3 + want.length, `${name}: returns where the payload starts`)
        t.equal(at - 3, frameHeaderSize(length, masked), `${name}: as long as frameHeaderSize says`)
        t.equal(target.subarray(3, at).toString('hex'), want.toString('hex'), `${name}: bytes`)
        t.ok(target.subarray(0, 3).every((b) => b === 0xaa) && target.subarray(at).every((b) => b === 0xaa), `${name}: nothing else touched`)
      }
    }
  }
})

t.test('known header bytes', async (t) => {
  const write = (length: number, key?: Uint8Array): string => {
    const target = Buffer.alloc(14)
    return target.subarray(0, writeFrameHeader(target, 0, 2, true, false, length, key)).toString('hex')
  }
  t.equal(write(0), '8200')
  t.equal(write(125), '827d')
  t.equal(write(126), '827e007e')
  t.equal(write(65535), '827effff')
  t.equal(write(65536), '827f0000000000010000')
  t.equal(write(2 ** 32 + 5), '827f0000000100000005')
  t.equal(write(2 ** 53 - 1), '827f001fffffffffffff')
  t.equal(write(5, KEY), '8285deadbeef')
  t.equal(write(126, KEY), '82fe007edeadbeef')
  t.equal(write(65536, KEY), '82ff0000000000010000deadbeef')
})

function parserOptions (isServer: boolean, readLimit = 0): FrameParserOptions {
  return { isServer, readLimit, maxFragments: 1000, allowRsv1: true, validateUtf8: true }
}

t.test('headers round-trip through FrameParser', async (t) => {
  const random = prng(77)
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 65537]) {
    for (const masked of [false, true]) {
      for (const [opcode, fin, rsv1] of [[2, true, false], [1, true, true], [2, false, false]] as const) {
        const name = `length ${length}, ${masked ? 'masked' : 'unmasked'}, opcode ${opcode} fin=${fin} rsv1=${rsv1}`
        const payload = opcode === 1 ? Buffer.alloc(length, 0x61) : randomBytes(random, length)
        const key = masked ? randomBytes(random, 4) : undefined
        const wire = Buffer.alloc(frameHeaderSize(length, masked) + length)
        const start = writeFrameHeader(wire, 0, opcode, fin, rsv1, length, key)
        payload.copy(wire, start)
        if (key !== undefined) applyMask(wire.subarray(start), key)
        const sink = new RecordingSink()
        new FrameParser(sink, parserOptions(masked)).push(wire)
        t.same(showEvents(mergeData(sink.events)), showEvents([
          { kind: 'start', type: opcode, compressed: rsv1 },
          ...(length > 0 ? [{ kind: 'data' as const, bytes: payload }] : []),
          ...(fin ? [{ kind: 'end' as const }] : [])
        ]), name)
      }
    }
    for (const opcode of [9, 10, 8]) {
      if (length > 125) continue
      const payload = opcode === 8 ? Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(Math.max(0, length - 2), 0x62)]).subarray(0, length) : randomBytes(random, length)
      if (opcode === 8 && length === 1) continue
      const wire = Buffer.alloc(frameHeaderSize(length, true) + length)
      const start = writeFrameHeader(wire, 0, opcode, true, false, length, KEY)
      payload.copy(wire, start)
      applyMask(wire.subarray(start), KEY)
      const sink = new RecordingSink()
      new FrameParser(sink, parserOptions(true)).push(wire)
      const want = opcode === 9
        ? { kind: 'ping', bytes: payload.toString('hex') }
        : opcode === 10
          ? { kind: 'pong', bytes: payload.toString('hex') }
          : { kind: 'close', code: length === 0 ? 1005 : 1000, reason: payload.subarray(2).toString() }
      t.same(showEvents(sink.events), [want], `control opcode ${opcode}, length ${length}`)
    }
  }
})

t.test('a 2^32 + 5 byte header round-trips: the parser reads exactly that length', async (t) => {
  const length = 2 ** 32 + 5
  for (const masked of [false, true]) {
    const header = Buffer.alloc(frameHeaderSize(length, masked))
    t.equal(writeFrameHeader(header, 0, 2, true, false, length, masked ? KEY : undefined), header.length)
    const tooSmall = new RecordingSink()
    new FrameParser(tooSmall, parserOptions(masked, length - 1)).push(Buffer.from(header))
    t.same(tooSmall.events.map((e) => e.kind === 'error' && e.closeCode), [1009], `${masked ? 'masked' : 'unmasked'}: over a limit of length - 1`)
    const exact = new RecordingSink()
    const parser = new FrameParser(exact, parserOptions(masked, length))
    parser.push(Buffer.from(header))
    const first = Buffer.from('first bytes')
    const wire = Buffer.from(first)
    if (masked) applyMask(wire, KEY)
    parser.push(wire)
    t.same(showEvents(exact.events), showEvents([{ kind: 'start', type: 2, compressed: false }, { kind: 'data', bytes: first }]), `${masked ? 'masked' : 'unmasked'}: within a limit of exactly length`)
    t.equal(parser.inMessage, true)
    t.equal(parser.isFailed, false)
  }
})
