import t from 'tap'
import { ProtocolError, ReadLimitError } from '../lib/protocol/errors.js'
import { FrameParser, type FrameParserOptions, type FrameSink } from '../lib/protocol/parser.js'
import {
  expectedEvents,
  frame,
  mergeData,
  prng,
  randomBytes,
  RecordingSink,
  showEvents,
  type FrameSpec,
  type SinkEvent
} from './helpers/frames.js'

type Role = 'server' | 'client'
const ROLES: Role[] = ['server', 'client']

function optionsFor (role: Role, overrides: Partial<FrameParserOptions> = {}): FrameParserOptions {
  return { isServer: role === 'server', readLimit: 0, maxFragments: 1 << 20, allowRsv1: false, validateUtf8: true, ...overrides }
}

const keyRandom = prng(0x5eed)
/** Frames as the peer of `role` sends them: masked with varied keys towards a server, unmasked towards a client. */
function build (role: Role, specs: readonly FrameSpec[]): Buffer {
  return Buffer.concat(specs.map((spec) => {
    if (role === 'client' || spec.mask !== undefined) return frame(spec)
    return frame({ ...spec, mask: randomBytes(keyRandom, 4) })
  }))
}

/** Parses copies of `chunks` (the parser unmasks in place) and returns what the sink saw. */
function run (role: Role, chunks: readonly Buffer[], overrides: Partial<FrameParserOptions> = {}): { sink: RecordingSink, parser: FrameParser } {
  const sink = new RecordingSink()
  const parser = new FrameParser(sink, optionsFor(role, overrides))
  for (const chunk of chunks) parser.push(Buffer.from(chunk))
  return { sink, parser }
}

function oneByteChunks (stream: Buffer): Buffer[] {
  const chunks: Buffer[] = []
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1))
  return chunks
}

/**
 * Checks the calls of a parser against a list of expected events (data merged) as they come,
 * without keeping what it was given; `problem` holds the first difference.
 */
class CheckingSink implements FrameSink {
  problem: string | undefined
  private index = 0
  private dataOffset = 0
  private readonly expected: readonly SinkEvent[]

  constructor (expected: readonly SinkEvent[]) {
    this.expected = expected
  }

  finish (): string | undefined {
    if (this.problem === undefined && (this.index !== this.expected.length || this.dataOffset !== 0)) {
      this.problem = `stream ended after event ${this.index} of ${this.expected.length} (data offset ${this.dataOffset})`
    }
    return this.problem
  }

  private note (problem: string): void {
    if (this.problem === undefined) this.problem = `event ${this.index}: ${problem}`
  }

  private take (kind: SinkEvent['kind']): SinkEvent | undefined {
    if (this.dataOffset !== 0) {
      this.note(`${kind} inside a data event`)
      return undefined
    }
    const event = this.expected[this.index++]
    if (event === undefined || event.kind !== kind) {
      this.note(`got ${kind}, expected ${event?.kind ?? 'nothing'}`)
      return undefined
    }
    return event
  }

  onMessageStart (type: number, compressed: boolean): void {
    const event = this.take('start')
    if (event?.kind === 'start' && (event.type !== type || event.compressed !== compressed)) {
      this.note(`start ${type}/${compressed}, expected ${event.type}/${event.compressed}`)
    }
  }

  onMessageData (piece: Buffer): void {
    const event = this.expected[this.index]
    if (piece.length === 0) {
      this.note('empty data piece')
    } else if (event?.kind !== 'data') {
      this.note(`got data, expected ${event?.kind ?? 'nothing'}`)
    } else if (this.dataOffset + piece.length > event.bytes.length) {
      this.note('more data than expected')
    } else if (piece.length === 1 ? piece[0] !== event.bytes[this.dataOffset] : !piece.equals(event.bytes.subarray(this.dataOffset, this.dataOffset + piece.length))) {
      this.note(`data differs at offset ${this.dataOffset}`)
    } else {
      this.dataOffset += piece.length
      if (this.dataOffset === event.bytes.length) {
        this.dataOffset = 0
        this.index++
      }
    }
  }

  onMessageEnd (): void {
    this.take('end')
  }

  onWholeMessage (type: number, payload: Buffer): void {
    this.onMessageStart(type, false)
    if (payload.length > 0) this.onMessageData(payload)
    this.onMessageEnd()
  }

  onPing (payload: Buffer): void {
    const event = this.take('ping')
    if (event?.kind === 'ping' && !event.bytes.equals(payload)) this.note('ping payload differs')
  }

  onPong (payload: Buffer): void {
    const event = this.take('pong')
    if (event?.kind === 'pong' && !event.bytes.equals(payload)) this.note('pong payload differs')
  }

  onClose (code: number, reason: string): void {
    const event = this.take('close')
    if (event?.kind === 'close' && (event.code !== code || event.reason !== reason)) this.note(`close ${code} ${reason}`)
  }

  onProtocolError (error: ProtocolError): void {
    this.note(`protocol error ${error.closeCode}: ${error.message}`)
  }
}

/** Parses `stream` cut at `cuts` (ascending offsets); returns the first difference from `expected`. */
function check (role: Role, stream: Buffer, work: Buffer, cuts: readonly number[], expected: readonly SinkEvent[], overrides: Partial<FrameParserOptions> = {}): string | undefined {
  // Only a server unmasks in place; a client's input can be reused as is.
  if (role === 'server') stream.copy(work)
  else work = stream
  const sink = new CheckingSink(expected)
  const parser = new FrameParser(sink, optionsFor(role, overrides))
  let from = 0
  for (const cut of cuts) {
    parser.push(work.subarray(from, cut))
    from = cut
  }
  parser.push(work.subarray(from))
  return sink.finish()
}

// ---------------------------------------------------------------------------------------------
// Sample streams of valid frames.

const KOSME = 'κόσμε'
const MIXED_TEXT = 'a\u0000\u007f\u0080\u07ff\u0800€\uffff\u{10000}𝄞\u{10ffff}' + KOSME
const all256 = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

/** Text of exactly `size` UTF-8 bytes made of 1-, 2-, 3- and 4-byte characters. */
function textOfSize (size: number): string {
  const unit = 'aκ€𝄞'
  let text = unit.repeat(Math.floor(size / Buffer.byteLength(unit)))
  text += 'z'.repeat(size - Buffer.byteLength(text))
  return text
}

function bytesOfSize (size: number, seed: number): Buffer {
  return randomBytes(prng(seed), size)
}

const kosmeBytes = Buffer.from(KOSME)

interface Sample {
  name: string
  frames: FrameSpec[]
  /** Too big to be part of the random splitting test. */
  huge?: boolean
}

/**
 * Inside a long payload a cut's effect depends only on its position modulo 4 (mask phase and
 * 32-bit alignment) and on whether a piece is shorter than the word loop; these many bytes at each
 * end of a stream are cut at every boundary when the rest is sampled.
 */
const EDGE = 1024

const SAMPLES: Sample[] = [
  { name: 'text', frames: [{ opcode: 1, payload: 'Hello, WebSocket!' }] },
  { name: 'binary', frames: [{ opcode: 2, payload: all256 }] },
  { name: 'text edge characters', frames: [{ opcode: 1, payload: MIXED_TEXT }] },
  { name: 'empty text and binary (length 0)', frames: [{ opcode: 1 }, { opcode: 2 }, { opcode: 1, payload: 'x' }] },
  { name: 'length 125 (7-bit)', frames: [{ opcode: 2, payload: bytesOfSize(125, 1) }] },
  { name: 'length 126 (16-bit)', frames: [{ opcode: 1, payload: textOfSize(126) }] },
  {
    name: 'fragmented text with interleaved ping and pong',
    frames: [
      { opcode: 1, fin: false, payload: kosmeBytes.subarray(0, 3) },
      { opcode: 9, payload: 'ping 1' },
      { opcode: 0, fin: false },
      { opcode: 10 },
      { opcode: 0, fin: false, payload: kosmeBytes.subarray(3, 4) },
      { opcode: 9, payload: bytesOfSize(125, 2) },
      { opcode: 0, fin: false, payload: kosmeBytes.subarray(4, 9) },
      { opcode: 10, payload: 'pong' },
      { opcode: 0, fin: true, payload: kosmeBytes.subarray(9) }
    ]
  },
  {
    name: 'fragmented binary with interleaved control frames',
    frames: [
      { opcode: 2, fin: false },
      { opcode: 0, fin: false, payload: all256.subarray(0, 100) },
      { opcode: 9 },
      { opcode: 0, fin: false, payload: all256.subarray(100, 101) },
      { opcode: 10, payload: all256.subarray(0, 125) },
      { opcode: 0, fin: true, payload: all256.subarray(101) },
      { opcode: 2, fin: false, payload: 'next' },
      { opcode: 0, fin: true }
    ]
  },
  {
    name: 'control frames only',
    frames: [
      { opcode: 9 },
      { opcode: 9, payload: bytesOfSize(125, 3) },
      { opcode: 10, payload: Buffer.from([0]) },
      { opcode: 10, payload: Buffer.from([0xff, 0xfe]) }
    ]
  },
  {
    name: 'non-minimal length encodings',
    frames: [
      { opcode: 2, encoding: 16, payload: Buffer.alloc(0) },
      { opcode: 1, encoding: 16, payload: 'five!' },
      { opcode: 2, encoding: 16, payload: bytesOfSize(125, 4) },
      { opcode: 2, encoding: 64, payload: Buffer.alloc(0) },
      { opcode: 1, encoding: 64, payload: KOSME },
      { opcode: 2, encoding: 64, payload: bytesOfSize(300, 5) },
      { opcode: 1, fin: false, encoding: 64, payload: 'frag' },
      { opcode: 0, fin: true, encoding: 16, payload: 'ment' }
    ]
  },
  {
    name: 'messages then a close frame, with bytes after it',
    frames: [
      { opcode: 1, payload: 'first' },
      { opcode: 9, payload: 'p' },
      { opcode: 2, fin: false, payload: all256.subarray(0, 7) },
      { opcode: 0, payload: all256.subarray(7, 9) },
      { opcode: 8, payload: Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye ' + KOSME)]) },
      { opcode: 9, payload: 'after close' },
      { opcode: 1, payload: 'after close' }
    ]
  },
  { name: 'empty close frame', frames: [{ opcode: 2, payload: 'x' }, { opcode: 8 }, { opcode: 2, payload: 'y' }] },
  { name: 'length 65535 (16-bit)', frames: [{ opcode: 2, payload: bytesOfSize(65535, 6) }] },
  { name: 'length 65536 (64-bit)', frames: [{ opcode: 2, payload: bytesOfSize(65536, 8) }] },
  { name: 'length 1000, multi-byte text', frames: [{ opcode: 1, payload: textOfSize(1000) }] },
  {
    name: '1 MiB binary then a text message',
    frames: [{ opcode: 2, payload: bytesOfSize(1 << 20, 7) }, { opcode: 1, payload: 'end' }],
    huge: true
  }
]

/**
 * Cut points for 2-chunk splits: every boundary, or (for a server's long streams, where unmasking
 * makes every cut cost a full pass) every boundary within EDGE bytes of either end plus a prime
 * stride through the middle, which meets every alignment.
 */
function splitPoints (length: number, role: Role): number[] {
  const huge = length > (1 << 20)
  if (!huge && (role === 'client' || length <= 2 * EDGE)) return Array.from({ length: length + 1 }, (_, i) => i)
  const edge = huge ? 64 : EDGE
  const stride = huge ? 16411 : 37
  const points = new Set<number>()
  for (let i = 0; i <= edge; i++) {
    points.add(i)
    points.add(length - i)
  }
  for (let i = edge; i <= length - edge; i += stride) points.add(i)
  return [...points].sort((a, b) => a - b)
}

t.test('every sample stream gives the same events under any chunking', async (t) => {
  for (const role of ROLES) {
    for (const sample of SAMPLES) {
      t.test(`${sample.name} (${role})`, async (t) => {
        const stream = build(role, sample.frames)
        const expected = expectedEvents(sample.frames)
        const work = Buffer.alloc(stream.length)

        if (stream.length < 4096) {
          const { sink } = run(role, [stream])
          t.same(showEvents(mergeData(sink.events)), showEvents(expected), 'one chunk gives the expected events')
        }
        t.equal(check(role, stream, work, [], expected), undefined, 'one chunk')

        const points = splitPoints(stream.length, role)
        const failures: string[] = []
        for (const cut of points) {
          const problem = check(role, stream, work, [cut], expected)
          if (problem !== undefined) failures.push(`cut at ${cut}: ${problem}`)
          if (failures.length >= 5) break
        }
        t.same(failures, [], `${points.length} two-chunk splits${points.length <= stream.length ? ' (sampled)' : ' (every boundary)'}`)

        const everyByte = Array.from({ length: stream.length - 1 }, (_, i) => i + 1)
        t.equal(check(role, stream, work, everyByte, expected), undefined, `${stream.length} one-byte chunks`)
      })
    }
  }
})

t.test('random multi-chunk splits of all small samples together', async (t) => {
  const random = prng(42)
  for (const role of ROLES) {
    const specs = SAMPLES.filter((s) => s.frames.every((f) => f.opcode !== 8) && s.huge !== true).flatMap((s) => s.frames)
    const stream = build(role, specs)
    const expected = expectedEvents(specs)
    const work = Buffer.alloc(stream.length)
    const failures: string[] = []
    for (let round = 0; round < 300; round++) {
      const count = 1 + Math.floor(random() * 40)
      const cuts = Array.from({ length: count }, () => Math.floor(random() * (stream.length + 1))).sort((a, b) => a - b)
      const problem = check(role, stream, work, cuts, expected)
      if (problem !== undefined) failures.push(`${role} cuts ${cuts.join(',')}: ${problem}`)
    }
    t.same(failures, [], `${role}: 300 random splittings of ${stream.length} bytes`)
  }
})

// ---------------------------------------------------------------------------------------------
// Failures.

const after = (role: Role): Buffer => build(role, [{ opcode: 9, payload: 'late' }, { opcode: 1, payload: 'late' }, { opcode: 2 }])

interface FailureCase {
  closeCode: number
  /** Expected ProtocolError.code. */
  code: string
  /** Events expected before the error (data merged). */
  before?: SinkEvent[]
  overrides?: Partial<FrameParserOptions>
  /** A part of the error message. */
  message?: RegExp
}

/**
 * Feeds `stream` followed by valid frames, in one chunk, as 1-byte chunks, and with more valid
 * input pushed after the failure: each time exactly `before` then one error must be reported.
 */
function expectFailure (t: tap.Test, role: Role, stream: Buffer, want: FailureCase): void {
  const tail = after(role)
  const runs: Array<[string, Buffer[]]> = [
    ['one chunk', [Buffer.concat([stream, tail]), tail]],
    ['one-byte chunks', [...oneByteChunks(stream), ...oneByteChunks(tail)]],
    ['separate pushes', [stream, tail, tail]]
  ]
  for (const [how, chunks] of runs) {
    const { sink, parser } = run(role, chunks, want.overrides)
    const events = mergeData(sink.events)
    const last = events.pop()
    t.same(showEvents(events), showEvents(want.before ?? []), `${how}: events before the error`)
    t.same(last === undefined ? [] : shape([last]), [err(want.closeCode, want.code)], `${how}: error ${want.closeCode} ${want.code} is the last event`)
    t.equal(sink.errors.length, 1, `${how}: one error`)
    t.ok(sink.errors[0] instanceof ProtocolError, `${how}: a ProtocolError`)
    t.equal(sink.errors[0] instanceof ReadLimitError, want.closeCode === 1009, `${how}: ReadLimitError iff 1009`)
    if (want.message !== undefined) t.match(sink.errors[0]?.message, want.message, `${how}: message`)
    t.equal(parser.isFailed, true, `${how}: parser failed`)
  }
}

const startText: SinkEvent = { kind: 'start', type: 1, compressed: false }
const startBinary: SinkEvent = { kind: 'start', type: 2, compressed: false }
const data = (bytes: Buffer | string): SinkEvent => ({ kind: 'data', bytes: Buffer.from(bytes) })
/** An error event as shape() shows it. */
const err = (closeCode: number, code: string): unknown =>
  ({ kind: 'error', closeCode, code })
/** Events with data merged, bytes in hex and errors reduced to kind, closeCode and code. */
function shape (events: readonly SinkEvent[]): unknown[] {
  return showEvents(mergeData(events)).map((event) => {
    const e = event as SinkEvent
    return e.kind === 'error' ? err(e.closeCode, e.code) : event
  })
}

t.test('masking rules', async (t) => {
  for (const opcode of [1, 2, 9, 10, 8]) {
    t.test(`opcode ${opcode}: server rejects unmasked`, async (t) => {
      expectFailure(t, 'server', frame({ opcode, payload: opcode === 8 ? Buffer.from([3, 232]) : 'hi' }), { closeCode: 1002, code: 'ERR_WS_EXPECTED_MASK', message: /unmasked/ })
    })
    t.test(`opcode ${opcode}: client rejects masked`, async (t) => {
      expectFailure(t, 'client', frame({ opcode, payload: opcode === 8 ? Buffer.from([3, 232]) : 'hi', mask: true }), { closeCode: 1002, code: 'ERR_WS_UNEXPECTED_MASK', message: /masked frame from the server/ })
    })
  }
  t.test('an unmasked continuation after a masked start', async (t) => {
    const stream = Buffer.concat([frame({ opcode: 1, fin: false, payload: 'ab', mask: true }), frame({ opcode: 0, payload: 'cd' })])
    expectFailure(t, 'server', stream, { closeCode: 1002, code: 'ERR_WS_EXPECTED_MASK', before: [startText, data('ab')] })
  })
  t.test('a zero masking key is still a masked frame', async (t) => {
    const { sink } = run('server', [frame({ opcode: 2, payload: 'abc', mask: Buffer.alloc(4) })])
    t.same(showEvents(sink.events), showEvents([startBinary, data('abc'), { kind: 'end' }]))
    const client = run('client', [frame({ opcode: 2, payload: 'abc', mask: Buffer.alloc(4) })])
    t.same(shape(client.sink.events), [err(1002, 'ERR_WS_UNEXPECTED_MASK')])
  })
})

t.test('reserved bits', async (t) => {
  for (const role of ROLES) {
    for (const opcode of [1, 2, 9]) {
      t.test(`${role}: RSV2 on opcode ${opcode}`, async (t) => {
        expectFailure(t, role, build(role, [{ opcode, rsv2: true, payload: 'x' }]), { closeCode: 1002, code: 'ERR_WS_RESERVED_BITS', message: /RSV2\/RSV3/ })
      })
      t.test(`${role}: RSV3 on opcode ${opcode}`, async (t) => {
        expectFailure(t, role, build(role, [{ opcode, rsv3: true, payload: 'x' }]), { closeCode: 1002, code: 'ERR_WS_RESERVED_BITS', message: /RSV2\/RSV3/ })
      })
    }
    t.test(`${role}: RSV2 is rejected even with allowRsv1`, async (t) => {
      expectFailure(t, role, build(role, [{ opcode: 2, rsv2: true }]), { closeCode: 1002, code: 'ERR_WS_RESERVED_BITS', overrides: { allowRsv1: true } })
    })
    for (const opcode of [1, 2]) {
      t.test(`${role}: RSV1 on opcode ${opcode} without allowRsv1`, async (t) => {
        expectFailure(t, role, build(role, [{ opcode, rsv1: true, payload: 'x' }]), { closeCode: 1002, code: 'ERR_WS_UNEXPECTED_RSV1', message: /without a negotiated extension/ })
      })
      t.test(`${role}: RSV1 on opcode ${opcode} with allowRsv1 marks the message compressed`, async (t) => {
        const specs: FrameSpec[] = [
          { opcode, rsv1: true, payload: Buffer.from([0xc0, 0x80, 0xff]) }, // not UTF-8: compressed text is checked after inflating
          { opcode, payload: 'plain' },
          { opcode, rsv1: true, fin: false, payload: 'a' },
          { opcode: 0, fin: false, payload: 'b' },
          { opcode: 9 },
          { opcode: 0, payload: 'c' }
        ]
        const { sink } = run(role, [build(role, specs)], { allowRsv1: true })
        t.same(showEvents(mergeData(sink.events)), showEvents(expectedEvents(specs)))
        t.same(sink.events.filter((e) => e.kind === 'start').map((e) => e.kind === 'start' && e.compressed), [true, false, true])
      })
    }
    for (const [name, overrides] of [['without', {}], ['with', { allowRsv1: true }]] as const) {
      t.test(`${role}: RSV1 on a continuation ${name} allowRsv1`, async (t) => {
        const stream = build(role, [{ opcode: 2, rsv1: name === 'with', fin: false, payload: 'a' }, { opcode: 0, rsv1: true, payload: 'b' }])
        expectFailure(t, role, stream, { closeCode: 1002, code: 'ERR_WS_UNEXPECTED_RSV1', overrides, before: [{ kind: 'start', type: 2, compressed: name === 'with' }, data('a')], message: /continuation/ })
      })
      for (const opcode of [8, 9, 10]) {
        t.test(`${role}: RSV1 on control opcode ${opcode} ${name} allowRsv1`, async (t) => {
          expectFailure(t, role, build(role, [{ opcode, rsv1: true }]), { closeCode: 1002, code: 'ERR_WS_UNEXPECTED_RSV1', overrides, message: /control frame/ })
        })
      }
    }
  }
})

t.test('opcodes and fragmentation rules', async (t) => {
  for (const role of ROLES) {
    for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
      for (const fin of [true, false]) {
        t.test(`${role}: reserved opcode ${opcode} fin=${fin}`, async (t) => {
          expectFailure(t, role, build(role, [{ opcode, fin, payload: 'x' }]), { closeCode: 1002, code: 'ERR_WS_RESERVED_OPCODE', message: new RegExp(`reserved opcode ${opcode}`) })
        })
      }
      t.test(`${role}: reserved opcode ${opcode} inside a fragmented message`, async (t) => {
        const stream = build(role, [{ opcode: 1, fin: false, payload: 'a' }, { opcode, payload: 'x' }])
        expectFailure(t, role, stream, { closeCode: 1002, code: 'ERR_WS_RESERVED_OPCODE', before: [startText, data('a')] })
      })
    }
    for (const opcode of [8, 9, 10]) {
      t.test(`${role}: control opcode ${opcode} with len7 126/127`, async (t) => {
        expectFailure(t, role, build(role, [{ opcode, payload: Buffer.alloc(126) }]), { closeCode: 1002, code: 'ERR_WS_CONTROL_TOO_LONG', message: /over 125/ })
        expectFailure(t, role, build(role, [{ opcode, payload: Buffer.alloc(5), encoding: 16 }]), { closeCode: 1002, code: 'ERR_WS_CONTROL_TOO_LONG', message: /over 125/ })
        expectFailure(t, role, build(role, [{ opcode, payload: Buffer.alloc(5), encoding: 64 }]), { closeCode: 1002, code: 'ERR_WS_CONTROL_TOO_LONG', message: /over 125/ })
        expectFailure(t, role, build(role, [{ opcode, length: 70000 }]), { closeCode: 1002, code: 'ERR_WS_CONTROL_TOO_LONG', message: /over 125/ })
      })
      t.test(`${role}: fragmented control opcode ${opcode}`, async (t) => {
        expectFailure(t, role, build(role, [{ opcode, fin: false }]), { closeCode: 1002, code: 'ERR_WS_FRAGMENTED_CONTROL', message: /fragmented control/ })
        const inside = build(role, [{ opcode: 2, fin: false, payload: 'a' }, { opcode, fin: false, payload: 'x' }])
        expectFailure(t, role, inside, { closeCode: 1002, code: 'ERR_WS_FRAGMENTED_CONTROL', before: [startBinary, data('a')] })
      })
    }
    t.test(`${role}: continuation without a start`, async (t) => {
      expectFailure(t, role, build(role, [{ opcode: 0, payload: 'x' }]), { closeCode: 1002, code: 'ERR_WS_UNEXPECTED_CONTINUATION', message: /continuation frame without/ })
      expectFailure(t, role, build(role, [{ opcode: 0, fin: false }]), { closeCode: 1002, code: 'ERR_WS_UNEXPECTED_CONTINUATION' })
      const afterMessage = build(role, [{ opcode: 1, fin: false, payload: 'a' }, { opcode: 0, payload: 'b' }, { opcode: 0, payload: 'c' }])
      expectFailure(t, role, afterMessage, { closeCode: 1002, code: 'ERR_WS_UNEXPECTED_CONTINUATION', before: [startText, data('ab'), { kind: 'end' }] })
    })
    for (const opcode of [1, 2]) {
      t.test(`${role}: opcode ${opcode} inside a fragmented message`, async (t) => {
        const stream = build(role, [{ opcode: 2, fin: false, payload: 'a' }, { opcode: 9 }, { opcode, payload: 'b' }])
        expectFailure(t, role, stream, { closeCode: 1002, code: 'ERR_WS_EXPECTED_CONTINUATION', before: [startBinary, data('a'), { kind: 'ping', bytes: Buffer.alloc(0) }], message: /inside a fragmented message/ })
      })
    }
    t.test(`${role}: control frames inside a fragmented message come in wire order`, async (t) => {
      const specs: FrameSpec[] = [
        { opcode: 1, fin: false, payload: 'one' },
        { opcode: 9, payload: 'p1' },
        { opcode: 10, payload: 'q1' },
        { opcode: 0, fin: false, payload: 'two' },
        { opcode: 10, payload: 'q2' },
        { opcode: 9, payload: 'p2' },
        { opcode: 0, payload: 'three' },
        { opcode: 9, payload: 'p3' }
      ]
      const { sink, parser } = run(role, [build(role, specs)])
      t.same(showEvents(sink.events), showEvents([
        startText, data('one'), { kind: 'ping', bytes: Buffer.from('p1') }, { kind: 'pong', bytes: Buffer.from('q1') },
        data('two'), { kind: 'pong', bytes: Buffer.from('q2') }, { kind: 'ping', bytes: Buffer.from('p2') },
        data('three'), { kind: 'end' }, { kind: 'ping', bytes: Buffer.from('p3') }
      ]))
      t.equal(parser.isFailed, false)
    })
  }
})

t.test('length rules', async (t) => {
  for (const role of ROLES) {
    for (const length of [2n ** 63n, 2n ** 63n + 5n, 2n ** 64n - 1n]) {
      t.test(`${role}: 64-bit length ${length} (MSB set)`, async (t) => {
        const header = build(role, [{ opcode: 2, encoding: 64, length }])
        expectFailure(t, role, header, { closeCode: 1002, code: 'ERR_WS_INVALID_LENGTH', message: /most significant bit/ })
        expectFailure(t, role, header, { closeCode: 1002, code: 'ERR_WS_INVALID_LENGTH', overrides: { readLimit: 10 } })
      })
    }
    for (const length of [2n ** 53n, 2n ** 53n + 1n, 2n ** 62n, 2n ** 63n - 1n]) {
      t.test(`${role}: 64-bit length ${length} (not a safe integer)`, async (t) => {
        const header = build(role, [{ opcode: 1, encoding: 64, length }])
        expectFailure(t, role, header, { closeCode: 1009, code: 'ERR_WS_READ_LIMIT', message: /2\^53/ })
        expectFailure(t, role, header, { closeCode: 1009, code: 'ERR_WS_READ_LIMIT', overrides: { readLimit: Number.MAX_SAFE_INTEGER } })
      })
    }
    t.test(`${role}: 64-bit length 2^53 - 1 with readLimit 0 is accepted`, async (t) => {
      const { sink, parser } = run(role, [build(role, [{ opcode: 2, encoding: 64, length: 2n ** 53n - 1n }])])
      // A one-frame message is reported with its first payload byte (it may still arrive whole).
      t.same(sink.events, [], 'the header is accepted')
      t.equal(parser.isFailed, false)
      parser.push(Buffer.from('abc'))
      t.same(sink.events.map((e) => e.kind === 'data' ? e.bytes.length : e.kind), ['start', 3], 'payload follows')
      t.equal(parser.isFailed, false)
      t.equal(parser.inMessage, true)
    })

    for (const [limit, length] of [[100, 101], [125, 126], [1, 2], [126, 127], [65535, 65536], [70000, 70001], [2 ** 32, 2 ** 32 + 1]]) {
      t.test(`${role}: length ${length} over readLimit ${limit} fails on the header alone`, async (t) => {
        const header = build(role, [{ opcode: 2, length }])
        t.ok(header.length <= 14)
        const sink = new RecordingSink()
        const parser = new FrameParser(sink, optionsFor(role, { readLimit: limit }))
        for (let i = 0; i < header.length - 1; i++) {
          parser.push(header.subarray(i, i + 1))
        }
        t.same(sink.events, [], 'nothing before the last header byte')
        parser.push(header.subarray(header.length - 1))
        t.same(shape(sink.events), [err(1009, 'ERR_WS_READ_LIMIT')], 'error right after the header')
        t.equal(sink.errors[0]?.name, 'ReadLimitError')
        t.ok(sink.errors[0] instanceof ReadLimitError)
        parser.push(Buffer.alloc(100))
        t.equal(sink.events.length, 1, 'payload after it is ignored')

        const whole = run(role, [header], { readLimit: limit })
        t.same(shape(whole.sink.events), [err(1009, 'ERR_WS_READ_LIMIT')], 'header in one chunk')
        const atLimit = run(role, [build(role, [{ opcode: 2, length: limit }])], { readLimit: limit })
        t.same(atLimit.sink.events, [], 'a length equal to the limit passes')
        t.equal(atLimit.parser.isFailed, false)
      })
    }
    t.test(`${role}: readLimit applies to text, binary and non-minimal encodings`, async (t) => {
      expectFailure(t, role, build(role, [{ opcode: 1, payload: 'abcdef' }]), { closeCode: 1009, code: 'ERR_WS_READ_LIMIT', overrides: { readLimit: 5 }, message: /more than 5 bytes/ })
      expectFailure(t, role, build(role, [{ opcode: 2, payload: 'abcdef', encoding: 64 }]), { closeCode: 1009, code: 'ERR_WS_READ_LIMIT', overrides: { readLimit: 5 } })
      const ok = run(role, [build(role, [{ opcode: 1, payload: 'abcde', encoding: 16 }])], { readLimit: 5 })
      t.same(showEvents(ok.sink.events), showEvents([startText, data('abcde'), { kind: 'end' }]))
    })
    t.test(`${role}: the cumulative length of a fragmented message`, async (t) => {
      const stream = build(role, [
        { opcode: 2, fin: false, payload: 'abcd' },
        { opcode: 9, payload: Buffer.alloc(125, 1) },
        { opcode: 0, fin: false, payload: 'efgh' },
        { opcode: 0, payload: 'ijk' }
      ])
      expectFailure(t, role, stream, {
        closeCode: 1009,
        code: 'ERR_WS_READ_LIMIT',
        overrides: { readLimit: 10 },
        before: [startBinary, data('abcd'), { kind: 'ping', bytes: Buffer.alloc(125, 1) }, data('efgh')]
      })
      const fits = run(role, [stream], { readLimit: 11 })
      t.same(showEvents(mergeData(fits.sink.events)), showEvents([startBinary, data('abcd'), { kind: 'ping', bytes: Buffer.alloc(125, 1) }, data('efghijk'), { kind: 'end' }]))
    })
    t.test(`${role}: the limit is per message`, async (t) => {
      const specs: FrameSpec[] = [{ opcode: 1, fin: false, payload: 'abcde' }, { opcode: 0, payload: 'fghij' }, { opcode: 2, payload: '0123456789' }, { opcode: 1, payload: '0123456789' }]
      const { sink } = run(role, [build(role, specs)], { readLimit: 10 })
      t.same(showEvents(mergeData(sink.events)), showEvents(expectedEvents(specs)))
    })
    t.test(`${role}: readLimit 0 means unlimited`, async (t) => {
      const specs: FrameSpec[] = [{ opcode: 2, payload: Buffer.alloc(200000, 9) }, { opcode: 1, fin: false, payload: 'a'.repeat(70000) }, { opcode: 0, payload: 'b'.repeat(70000) }]
      const { sink } = run(role, [build(role, specs)], { readLimit: 0 })
      t.same(showEvents(mergeData(sink.events)), showEvents(expectedEvents(specs)))
    })
    t.test(`${role}: readLimit may change between pushes`, async (t) => {
      const sink = new RecordingSink()
      const options = optionsFor(role, { readLimit: 3 })
      const parser = new FrameParser(sink, options)
      parser.push(build(role, [{ opcode: 2, payload: 'abc' }]))
      options.readLimit = 2
      parser.push(build(role, [{ opcode: 2, payload: 'abc' }]))
      t.same(showEvents(sink.events.slice(0, 3)), showEvents([startBinary, data('abc'), { kind: 'end' }]))
      t.same(shape(sink.events.slice(3)), [err(1009, 'ERR_WS_READ_LIMIT')])
      t.equal(parser.options, options)
    })
  }
})

t.test('maxFragments', async (t) => {
  for (const role of ROLES) {
    t.test(`${role}: one fragment more than allowed`, async (t) => {
      const three: FrameSpec[] = [{ opcode: 1, fin: false, payload: 'a' }, { opcode: 9 }, { opcode: 0, fin: false, payload: 'b' }, { opcode: 0, payload: 'c' }]
      const ok = run(role, [build(role, [...three, ...three])], { maxFragments: 3 })
      t.same(showEvents(mergeData(ok.sink.events)), showEvents(expectedEvents([...three, ...three])), 'three fragments, twice, with a ping between')
      const four = build(role, [{ opcode: 1, fin: false, payload: 'a' }, { opcode: 0, fin: false, payload: 'b' }, { opcode: 0, fin: false, payload: 'c' }, { opcode: 0, payload: 'd' }])
      expectFailure(t, role, four, { closeCode: 1009, code: 'ERR_WS_TOO_MANY_FRAGMENTS', overrides: { maxFragments: 3 }, before: [startText, data('abc')], message: /more than 3 frames/ })
    })
    t.test(`${role}: maxFragments 1 allows only unfragmented messages`, async (t) => {
      const ok = run(role, [build(role, [{ opcode: 2, payload: 'x' }, { opcode: 1 }])], { maxFragments: 1 })
      t.same(showEvents(ok.sink.events), showEvents([startBinary, data('x'), { kind: 'end' }, startText, { kind: 'end' }]))
      expectFailure(t, role, build(role, [{ opcode: 2, fin: false }, { opcode: 0 }]), { closeCode: 1009, code: 'ERR_WS_TOO_MANY_FRAGMENTS', overrides: { maxFragments: 1 }, before: [startBinary] })
    })
  }
})

// ---------------------------------------------------------------------------------------------
// UTF-8 in text messages.

const INVALID_UTF8: Array<[string, number[]]> = [
  ['overlong C0 80', [0xc0, 0x80]],
  ['overlong C1 BF', [0xc1, 0xbf]],
  ['overlong E0 80 80', [0xe0, 0x80, 0x80]],
  ['overlong E0 9F BF', [0xe0, 0x9f, 0xbf]],
  ['overlong F0 80 80 80', [0xf0, 0x80, 0x80, 0x80]],
  ['overlong F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf]],
  ['surrogate ED A0 80', [0xed, 0xa0, 0x80]],
  ['surrogate ED BF BF', [0xed, 0xbf, 0xbf]],
  ['above U+10FFFF F4 90 80 80', [0xf4, 0x90, 0x80, 0x80]],
  ['F5', [0xf5, 0x80, 0x80, 0x80]],
  ['F8', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ['FE', [0xfe]],
  ['FF', [0xff]],
  ['lone continuation 80', [0x80]],
  ['lone continuation BF after ASCII', [0x41, 0xbf]],
  ['two-byte lead then ASCII', [0xc2, 0x41]],
  ['three-byte lead then ASCII', [0xe2, 0x82, 0x41]],
  ['truncated 2-byte at end', [0x41, 0xc2]],
  ['truncated 3-byte at end', [0x41, 0xe2, 0x82]],
  ['truncated 4-byte at end', [0x41, 0xf0, 0x9f, 0x98]],
  ['Autobahn 6.3.1', [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64]]
]

const VALID_UTF8: Array<[string, string]> = [
  ['empty', ''],
  ['U+0000', '\u0000'],
  ['U+007F', '\u007f'],
  ['U+0080', '\u0080'],
  ['U+07FF', '\u07ff'],
  ['U+0800', '\u0800'],
  ['U+D7FF', '\ud7ff'],
  ['U+E000', '\ue000'],
  ['U+FFFF', '\uffff'],
  ['U+10000', '\u{10000}'],
  ['U+10FFFF', '\u{10ffff}'],
  ['κόσμε', KOSME],
  ['mixed', MIXED_TEXT]
]

/** The ways a text message can arrive: one frame in one chunk, one frame in 1-byte chunks, one byte per fragment. */
function textDeliveries (role: Role, bytes: Buffer): Array<[string, Buffer[], SinkEvent[]]> {
  const single = build(role, [{ opcode: 1, payload: bytes }])
  const fragments: FrameSpec[] = bytes.length === 0 ? [{ opcode: 1 }] : [...bytes].map((byte, i) => ({ opcode: i === 0 ? 1 : 0, fin: i === bytes.length - 1, payload: Buffer.from([byte]) }))
  return [
    ['one frame, one chunk', [single], []],
    ['one frame, one-byte chunks', oneByteChunks(single), []],
    ['a fragment per byte', [build(role, fragments)], []]
  ]
}

t.test('invalid UTF-8 in text messages fails with 1007', async (t) => {
  for (const role of ROLES) {
    for (const [name, bytes] of INVALID_UTF8) {
      t.test(`${role}: ${name}`, async (t) => {
        const payload = Buffer.from(bytes)
        for (const [how, chunks] of textDeliveries(role, payload)) {
          const { sink, parser } = run(role, [...chunks, after(role)])
          const events = sink.events
          t.same(shape(events.slice(-1)), [err(1007, 'ERR_WS_INVALID_UTF8')], `${how}: 1007 last`)
          t.equal(sink.errors.length, 1, `${how}: one error`)
          t.notOk(events.some((e) => e.kind === 'end'), `${how}: the message never ends`)
          t.ok(parser.isFailed, `${how}: failed`)
        }
        const noCheck = run(role, textDeliveries(role, payload)[0]![1], { validateUtf8: false })
        t.same(showEvents(mergeData(noCheck.sink.events)), showEvents([startText, data(payload), { kind: 'end' }]), 'accepted with validateUtf8 false')
        const asBinary = run(role, [build(role, [{ opcode: 2, payload }])])
        t.same(showEvents(asBinary.sink.events), showEvents([startBinary, data(payload), { kind: 'end' }]), 'binary is never checked')
        const asPing = run(role, [build(role, [{ opcode: 9, payload }])])
        t.same(showEvents(asPing.sink.events), showEvents([{ kind: 'ping', bytes: payload }]), 'ping payload is never checked')
      })
    }
    for (const [name, text] of VALID_UTF8) {
      t.test(`${role}: valid ${name}`, async (t) => {
        const payload = Buffer.from(text)
        for (const [how, chunks] of textDeliveries(role, payload)) {
          const { sink } = run(role, chunks)
          t.same(showEvents(mergeData(sink.events)), showEvents([startText, ...(payload.length > 0 ? [data(payload)] : []), { kind: 'end' }]), how)
        }
      })
    }
  }
})

t.test('UTF-8 is checked fail-fast across fragments', async (t) => {
  for (const role of ROLES) {
    t.test(`${role}: a first fragment ending in F4 90 fails before FIN`, async (t) => {
      const sink = new RecordingSink()
      const parser = new FrameParser(sink, optionsFor(role))
      parser.push(build(role, [{ opcode: 1, fin: false, payload: Buffer.from([0x61, 0x62, 0xf4, 0x90]) }]))
      t.same(shape(sink.events), shape([startText]).concat(err(1007, 'ERR_WS_INVALID_UTF8')))
      t.equal(parser.inMessage, true)
    })
    t.test(`${role}: a single frame whose first chunk ends in ED A0 fails before the rest arrives`, async (t) => {
      const stream = build(role, [{ opcode: 1, payload: Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]) }])
      const sink = new RecordingSink()
      const parser = new FrameParser(sink, optionsFor(role))
      parser.push(Buffer.from(stream.subarray(0, stream.length - 2)))
      // A one-frame message is reported with its first valid piece, so nothing precedes the error.
      t.same(shape(sink.events), [err(1007, 'ERR_WS_INVALID_UTF8')])
    })
    t.test(`${role}: bad bytes after good ones in a later chunk`, async (t) => {
      const stream = build(role, [{ opcode: 1, payload: 'good' + '\u00ff' }])
      const bad = Buffer.from(stream)
      bad[bad.length - 1] ^= 0x40 // the last payload byte BF becomes FF, masked or not
      const { sink } = run(role, [bad.subarray(0, bad.length - 2), bad.subarray(bad.length - 2)])
      t.same(showEvents(sink.events.slice(0, 2)), showEvents([startText, data('good')]))
      t.same(shape(sink.events.slice(2)), [err(1007, 'ERR_WS_INVALID_UTF8')])
    })
    t.test(`${role}: a character split across fragments (E2 82 | AC) passes`, async (t) => {
      const specs: FrameSpec[] = [
        { opcode: 1, fin: false, payload: Buffer.from([0x61, 0xe2, 0x82]) },
        { opcode: 9, payload: Buffer.from([0xe2]) },
        { opcode: 0, fin: false, payload: Buffer.from([0xac, 0xf0]) },
        { opcode: 0, fin: false, payload: Buffer.from([0x9f]) },
        { opcode: 0, fin: false },
        { opcode: 0, payload: Buffer.from([0x98, 0x80]) }
      ]
      const { sink, parser } = run(role, [build(role, specs)])
      t.same(showEvents(mergeData(sink.events)), showEvents(expectedEvents(specs)))
      t.equal(Buffer.concat(sink.events.flatMap((e) => e.kind === 'data' ? [e.bytes] : [])).toString(), 'a€😀')
      t.equal(parser.isFailed, false)
    })
    t.test(`${role}: a message whose last fragment is empty and leaves a character open`, async (t) => {
      const stream = build(role, [{ opcode: 1, fin: false, payload: Buffer.from([0xe2, 0x82]) }, { opcode: 0 }])
      expectFailure(t, role, stream, { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8', before: [startText, data(Buffer.from([0xe2, 0x82]))], message: /ends inside a UTF-8 character/ })
    })
    t.test(`${role}: a new text message does not inherit an open character`, async (t) => {
      // The validator is reset at each start: a lone continuation byte in the next message fails.
      const specs: FrameSpec[] = [{ opcode: 1, fin: false, payload: 'x' }, { opcode: 0, payload: '€' }, { opcode: 1, payload: Buffer.from([0xac]) }]
      const stream = build(role, specs)
      expectFailure(t, role, stream, { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8', before: [startText, data('x€'), { kind: 'end' }] })
    })
    t.test(`${role}: compressed text is not checked by the parser`, async (t) => {
      const { sink } = run(role, [build(role, [{ opcode: 1, rsv1: true, fin: false, payload: Buffer.from([0xff]) }, { opcode: 0, payload: Buffer.from([0xc0]) }])], { allowRsv1: true })
      t.same(showEvents(mergeData(sink.events)), showEvents([{ kind: 'start', type: 1, compressed: true }, data(Buffer.from([0xff, 0xc0])), { kind: 'end' }]))
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Close frames.

/** RFC 6455 §7.4.1 and §7.4.2 plus the IANA registry: the codes a peer may send. */
function mayBeReceived (code: number): boolean {
  const defined = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
  if (code < 3000) return defined.includes(code)
  return code <= 4999
}

t.test('close frames', async (t) => {
  for (const role of ROLES) {
    t.test(`${role}: empty close payload is 1005`, async (t) => {
      const { sink, parser } = run(role, [build(role, [{ opcode: 8 }])])
      t.same(sink.events, [{ kind: 'close', code: 1005, reason: '' }])
      t.equal(parser.isFailed, true, 'nothing is parsed after a close')
    })
    t.test(`${role}: 1-byte close payload is 1002`, async (t) => {
      expectFailure(t, role, build(role, [{ opcode: 8, payload: Buffer.from([3]) }]), { closeCode: 1002, code: 'ERR_WS_INVALID_CLOSE_PAYLOAD', message: /1-byte/ })
    })
    // The whole table as a client; a server sees the codes around each boundary.
    const codes = role === 'client'
      ? Array.from({ length: 5001 }, (_, code) => code)
      : [0, 999, 1000, 1003, 1004, 1005, 1006, 1007, 1014, 1015, 1016, 2999, 3000, 4999, 5000, 65535]
    t.test(`${role}: close codes ${role === 'client' ? '0..5000' : 'at the boundaries'}`, async (t) => {
      const wrong: number[] = []
      for (const code of codes) {
        const payload = Buffer.from([code >> 8, code & 0xff, 0x6f, 0x6b])
        const { sink } = run(role, [build(role, [{ opcode: 8, payload }])])
        const event = sink.events[0]
        const ok = mayBeReceived(code)
        const right = sink.events.length === 1 && (ok
          ? event?.kind === 'close' && event.code === code && event.reason === 'ok'
          : event?.kind === 'error' && event.closeCode === 1002 && event.code === 'ERR_WS_INVALID_CLOSE_CODE')
        if (!right) wrong.push(code)
      }
      t.same(wrong, [], 'each code accepted or rejected with 1002 as RFC 6455 §7.4 says')
    })
    t.test(`${role}: a close reason that is not UTF-8 is 1007`, async (t) => {
      expectFailure(t, role, build(role, [{ opcode: 8, payload: Buffer.from([0x03, 0xe8, 0x61, 0xed, 0xa0, 0x80]) }]), { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8' })
      expectFailure(t, role, build(role, [{ opcode: 8, payload: Buffer.from([0x03, 0xe8, 0xe2, 0x82]) }]), { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8' })
      expectFailure(t, role, build(role, [{ opcode: 8, payload: Buffer.from([0x03, 0xe8, 0xe2, 0x82]) }]), { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8', overrides: { validateUtf8: false } })
    })
    t.test(`${role}: a valid close stops the parser`, async (t) => {
      const close = build(role, [{ opcode: 8, payload: Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from('x'.repeat(123))]) }])
      const { sink, parser } = run(role, [Buffer.concat([close, after(role)]), after(role), Buffer.from([0xff, 0xff, 0xff])])
      t.same(sink.events, [{ kind: 'close', code: 4000, reason: 'x'.repeat(123) }])
      t.equal(parser.isFailed, true)
    })
    t.test(`${role}: a close inside a fragmented message`, async (t) => {
      const { sink, parser } = run(role, [build(role, [{ opcode: 2, fin: false, payload: 'a' }, { opcode: 8, payload: Buffer.from([0x03, 0xe9]) }, { opcode: 0, payload: 'b' }])])
      t.same(showEvents(sink.events), showEvents([startBinary, data('a'), { kind: 'close', code: 1001, reason: '' }]))
      t.equal(parser.inMessage, true)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Sink interaction, views and memory.

t.test('stop() from inside a sink call', async (t) => {
  for (const role of ROLES) {
    const stream = build(role, [{ opcode: 1, fin: false, payload: 'abc' }, { opcode: 0, payload: 'x' }, { opcode: 9 }, { opcode: 2, payload: 'def' }])
    const onStart = new RecordingSink()
    const p1 = new FrameParser(onStart, optionsFor(role))
    onStart.after = (event) => { if (event.kind === 'start') p1.stop() }
    p1.push(stream)
    t.same(onStart.events, [startText], `${role}: stop in onMessageStart delivers no payload`)
    t.equal(p1.isFailed, true)

    const onEmptyStart = new RecordingSink()
    const p3 = new FrameParser(onEmptyStart, optionsFor(role))
    onEmptyStart.after = (event) => { if (event.kind === 'start') p3.stop() }
    p3.push(build(role, [{ opcode: 2, fin: false }, { opcode: 0 }, { opcode: 9 }]))
    t.same(onEmptyStart.events, [startBinary], `${role}: stop in onMessageStart of an empty message: no end either`)

    const onWhole = new RecordingSink()
    const p4 = new FrameParser(onWhole, optionsFor(role))
    onWhole.after = (event) => { if (event.kind === 'end') p4.stop() }
    p4.push(build(role, [{ opcode: 1, payload: 'abc' }, { opcode: 9 }, { opcode: 2, payload: 'def' }]))
    t.equal(onWhole.wholeMessages, 1, `${role}: the one-frame message came whole`)
    t.same(showEvents(onWhole.events), showEvents([startText, data('abc'), { kind: 'end' }]), `${role}: stop in onWholeMessage ignores the rest`)

    const onPing = new RecordingSink()
    const p2 = new FrameParser(onPing, optionsFor(role))
    onPing.after = (event) => { if (event.kind === 'ping') p2.stop() }
    p2.push(build(role, [{ opcode: 1, payload: 'abc' }, { opcode: 9 }, { opcode: 2, payload: 'def' }]))
    p2.push(build(role, [{ opcode: 2, payload: 'ghi' }]))
    t.same(showEvents(onPing.events), showEvents([startText, data('abc'), { kind: 'end' }, { kind: 'ping', bytes: Buffer.alloc(0) }]), `${role}: stop in onPing ignores the rest`)
  }
})

t.test('state getters', async (t) => {
  const sink = new RecordingSink()
  const parser = new FrameParser(sink, optionsFor('client'))
  t.equal(parser.inMessage, false)
  t.equal(parser.isFailed, false)
  parser.push(frame({ opcode: 1, fin: false, payload: 'a' }))
  t.equal(parser.inMessage, true)
  parser.push(frame({ opcode: 9 }))
  t.equal(parser.inMessage, true, 'still in the message during a ping')
  parser.push(frame({ opcode: 0, payload: 'b' }))
  t.equal(parser.inMessage, false)
  parser.push(Buffer.alloc(0))
  t.equal(sink.events.length, 5, 'an empty push does nothing')
  t.equal(parser.isFailed, false)
})

t.test('data pieces are views of the pushed chunk, unmasked in place', async (t) => {
  for (const role of ROLES) {
    const specs: FrameSpec[] = [{ opcode: 2, payload: 'hello' }, { opcode: 1, fin: false, payload: 'wor' }, { opcode: 10, payload: 'x' }, { opcode: 0, payload: 'ld' }]
    const chunk = build(role, specs)
    const sink = new RecordingSink()
    new FrameParser(sink, optionsFor(role)).push(chunk)
    t.equal(sink.pieces.length, 3)
    for (const piece of sink.pieces) {
      t.equal(piece.buffer, chunk.buffer, `${role}: same ArrayBuffer`)
      t.ok(piece.byteOffset >= chunk.byteOffset && piece.byteOffset + piece.length <= chunk.byteOffset + chunk.length, `${role}: inside the chunk`)
    }
    t.same(sink.pieces.map(String), ['hello', 'wor', 'ld'])
    const whole = frame({ opcode: 2, payload: 'xyz', mask: role === 'server' })
    const payloadOnly = whole.subarray(whole.length - 3)
    const viewSink = new RecordingSink()
    const parser = new FrameParser(viewSink, optionsFor(role))
    parser.push(whole.subarray(0, whole.length - 3))
    parser.push(payloadOnly)
    t.equal(viewSink.pieces[0], payloadOnly, `${role}: a chunk that is all payload is passed on as is`)
    t.equal(payloadOnly.toString(), 'xyz')
  }
})

t.test('control payloads are copies that stay valid', async (t) => {
  for (const role of ROLES) {
    const payloads: Buffer[] = []
    const sink: FrameSink = {
      onMessageStart () {},
      onMessageData () {},
      onMessageEnd () {},
      onWholeMessage () {},
      onPing (payload) { payloads.push(payload) },
      onPong (payload) { payloads.push(payload) },
      onClose () {},
      onProtocolError (error) { throw error }
    }
    const chunk = build(role, [{ opcode: 9, payload: 'first' }, { opcode: 10, payload: 'second!' }, { opcode: 9 }, { opcode: 9, payload: 'third' }])
    const parser = new FrameParser(sink, optionsFor(role))
    parser.push(chunk.subarray(0, 9))
    parser.push(chunk.subarray(9))
    t.same(payloads.map(String), ['first', 'second!', '', 'third'], `${role}: earlier payloads are not overwritten`)
    chunk.fill(0x55)
    t.same(payloads.map(String), ['first', 'second!', '', 'third'], `${role}: not views of the chunk`)
  }
})

t.test('bounded memory: 100,000 one-byte fragments', async (t) => {
  for (const role of ROLES) {
    const count = 100000
    const frameSize = role === 'server' ? 7 : 3
    const chunk = Buffer.alloc(count * frameSize)
    const expected = Buffer.alloc(count)
    for (let i = 0; i < count; i++) {
      expected[i] = i & 0xff
      const at = i * frameSize
      chunk[at] = (i === count - 1 ? 0x80 : 0) | (i === 0 ? 2 : 0)
      if (role === 'server') {
        chunk[at + 1] = 0x81
        const key = (i * 37) & 0xff
        chunk.fill(key, at + 2, at + 6)
        chunk[at + 6] = expected[i]! ^ key
      } else {
        chunk[at + 1] = 1
        chunk[at + 2] = expected[i]!
      }
    }
    const pieces: Buffer[] = []
    let starts = 0
    let ends = 0
    const sink: FrameSink = {
      onMessageStart () { starts++ },
      onMessageData (piece) { pieces.push(piece) },
      onMessageEnd () { ends++ },
      onWholeMessage () { throw new Error('a fragmented message is not whole') },
      onPing () {},
      onPong () {},
      onClose () {},
      onProtocolError (error) { throw error }
    }
    const pristine = Buffer.from(chunk)
    const parser = new FrameParser(sink, optionsFor(role, { maxFragments: count, readLimit: count }))
    const half = Math.floor(chunk.length / 2) + 1
    const first = chunk.subarray(0, half)
    const second = chunk.subarray(half)
    parser.push(first)
    parser.push(second)
    t.equal(starts, 1, `${role}: one message`)
    t.equal(ends, 1, `${role}: one end`)
    t.equal(pieces.length, count, `${role}: ${count} pieces`)
    t.ok(pieces.every((piece) => piece.length === 1 && piece.buffer === chunk.buffer), `${role}: every piece is a 1-byte view of the pushed chunk`)
    t.ok(Buffer.concat(pieces).equals(expected), `${role}: the bytes`)
    // Its one fixed scratch block: 4 bytes of mask key, 14 of split header, 125 of control payload.
    const grown = Object.entries(parser).filter(([, value]) => Array.isArray(value) || value instanceof Map || value instanceof Set || (Buffer.isBuffer(value) && value.length > 4 + 14 + 125))
    t.same(grown.map(([key]) => key), [], `${role}: the parser holds no collection and no buffer beyond its fixed scratch`)
    const errors: ProtocolError[] = []
    let piecesBeforeError = 0
    const limited = new FrameParser({ ...sink, onMessageData () { piecesBeforeError++ }, onProtocolError (error) { errors.push(error) } }, optionsFor(role, { maxFragments: count - 1 }))
    limited.push(pristine.subarray(0, (count - 1) * frameSize))
    t.same(errors, [], `${role}: ${count - 1} fragments pass maxFragments ${count - 1}`)
    limited.push(pristine.subarray((count - 1) * frameSize))
    t.equal(errors[0]?.closeCode, 1009, `${role}: fragment ${count} fails`)
    t.equal(errors[0]?.code, 'ERR_WS_TOO_MANY_FRAGMENTS', `${role}: on the fragment limit`)
    t.equal(piecesBeforeError, count - 1, `${role}: its byte is not delivered`)
  }
})

t.test('a one-frame message whose payload is in one chunk is reported whole, in one call', async (t) => {
  for (const role of ROLES) {
    const stream = build(role, [{ opcode: 1, payload: 'abc' }, { opcode: 2 }, { opcode: 2, payload: 'defg' }])
    const whole = run(role, [stream])
    t.equal(whole.sink.wholeMessages, 3, `${role}: three whole messages, the empty one too`)
    t.same(showEvents(whole.sink.events), showEvents([startText, data('abc'), { kind: 'end' }, startBinary, { kind: 'end' }, startBinary, data('defg'), { kind: 'end' }]))
    const split = run(role, [stream.subarray(0, stream.length - 2), stream.subarray(stream.length - 2)])
    t.equal(split.sink.wholeMessages, 2, `${role}: a payload cut by the chunk boundary is reported in pieces`)
    t.same(showEvents(mergeData(split.sink.events)), showEvents(whole.sink.events), `${role}: with the same events`)
    const compressed = run(role, [build(role, [{ opcode: 1, rsv1: true, payload: 'x' }])], { allowRsv1: true })
    t.equal(compressed.sink.wholeMessages, 0, `${role}: a compressed message goes through start, data and end`)
  }
})
