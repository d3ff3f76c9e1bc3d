// Conformance cases after the Autobahn TestSuite's categories (1 framing, 2 pings/pongs, 3 reserved
// bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits), written once and run by
// an independent byte-level client over any transport that carries a WebSocket: a TCP connection
// (test/conformance.test.ts) or an HTTP/2 extended CONNECT stream (test/conformance-http2.test.ts).
// Every case is strict: the exact close code, sent as early as the RFC allows, and nothing after it.
import type { Test } from 'tap'
import { clientFrame, type FrameSpec, type WireClient } from './wire-client.js'

/** What the cases need from a transport: clients on the echo server's paths, and how it ends them. */
export interface ConformanceTransport {
  /** Opens a client on `path` of the echo server (/echo, /echo/stream or /echo/prepared), handshake done. */
  open: (path: string) => Promise<WireClient>
  /** Asserts that the server, after its close frame, ended the connection as this transport should. */
  ended: (t: Test, client: WireClient) => Promise<void>
  /** Asserts what must still hold after the server failed a connection (e.g. the HTTP/2 session goes on). */
  afterFailure: (t: Test) => Promise<void>
}

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const PONG = 10

/** Expects one message (reassembling fragments, which the streaming echo sends). */
async function expectFrame (t: Test, client: WireClient, opcode: number, payload: Buffer | string): Promise<void> {
  const frame = await client.next()
  t.ok(frame, 'a frame arrives')
  t.equal(frame?.opcode, opcode, `opcode ${opcode}`)
  const pieces = [frame?.payload ?? Buffer.alloc(0)]
  for (let more = frame; more !== null && !more.fin;) {
    more = await client.next()
    t.equal(more?.opcode, 0, 'a continuation frame')
    pieces.push(more?.payload ?? Buffer.alloc(0))
  }
  t.ok(Buffer.concat(pieces).equals(typeof payload === 'string' ? Buffer.from(payload) : payload), 'payload echoed exactly')
}

/** Expects the server's close frame with `code` (null: no status), then the end of the connection. */
async function expectClose (t: Test, transport: ConformanceTransport, client: WireClient, code: number | null): Promise<void> {
  const frame = await client.next()
  t.equal(frame?.opcode, CLOSE, 'next frame is a close')
  if (code === null) t.equal(frame?.payload.length, 0, 'close without status')
  else t.equal(frame?.payload.readUInt16BE(0), code, `close code ${code}`)
  await transport.ended(t, client)
}

/** Expects the server to fail the connection with `code`, and the transport to be unharmed by it. */
async function expectFailure (t: Test, transport: ConformanceTransport, client: WireClient, code: number): Promise<void> {
  await expectClose(t, transport, client, code)
  await transport.afterFailure(t)
}

/** Sends a close, expects it echoed, and that nothing else came before it. */
async function closeCleanly (t: Test, transport: ConformanceTransport, client: WireClient): Promise<void> {
  client.send({ opcode: CLOSE, payload: Buffer.from([0x03, 0xe8]) })
  await expectClose(t, transport, client, 1000)
}

const VALID_UTF8 = [
  'Hello-µ@ßöäüàá-UTF-8!!', 'κόσμε', '\u0000', '\u007f', '\u0080', '\u07ff', '\u0800', '\uffff', '\u{10000}', '\u{10ffff}'
].map((s) => Buffer.from(s))
const INVALID_UTF8 = [
  [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xf0, 0x80, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80],
  [0xf5], [0xff], [0x80], [0xce, 0xba, 0xe1, 0xbd], [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64]
].map((b) => Buffer.from(b))

/** Declares every case as a subtest of `t`, each WebSocket opened through `transport`. */
export function conformanceCases (t: Test, transport: ConformanceTransport): void {
  for (const path of ['/echo', '/echo/stream', '/echo/prepared']) {
    t.test(`1 framing on ${path}`, async (t: Test) => {
      for (const opcode of [TEXT, BINARY]) {
        for (const size of [0, 125, 126, 127, 128, 65535, 65536]) {
          const client = await transport.open(path)
          const payload = Buffer.alloc(size, opcode === TEXT ? '*' : 0xfe)
          client.send({ opcode, payload })
          await expectFrame(t, client, opcode, payload)
          await closeCleanly(t, transport, client)
        }
      }
    })
  }

  t.test('2 pings and pongs', async (t: Test) => {
    const sizes = [0, 1, 125]
    for (const size of sizes) {
      const client = await transport.open('/echo')
      const payload = Buffer.alloc(size, 0xaa)
      client.send({ opcode: PING, payload })
      await expectFrame(t, client, PONG, payload)
      await closeCleanly(t, transport, client)
    }
    const big = await transport.open('/echo')
    big.send({ opcode: PING, payload: Buffer.alloc(126) })
    await expectFailure(t, transport, big, 1002)

    const unsolicited = await transport.open('/echo')
    unsolicited.send({ opcode: PONG, payload: 'unsolicited' }, { opcode: TEXT, payload: 'after' })
    await expectFrame(t, unsolicited, TEXT, 'after')
    await closeCleanly(t, transport, unsolicited)

    const many = await transport.open('/echo')
    const pings = Array.from({ length: 10 }, (_, i) => ({ opcode: PING, payload: `ping ${i}` }))
    many.send(...pings)
    for (let i = 0; i < 10; i++) await expectFrame(t, many, PONG, `ping ${i}`)
    await closeCleanly(t, transport, many)

    const bytewise = await transport.open('/echo')
    const frame = clientFrame({ opcode: PING, payload: 'slow ping' })
    for (const byte of frame) {
      bytewise.sendRaw(Buffer.from([byte]))
      await new Promise((resolve) => setImmediate(resolve))
    }
    await expectFrame(t, bytewise, PONG, 'slow ping')
    await closeCleanly(t, transport, bytewise)
  })

  t.test('3 reserved bits fail the connection after echoing what came before', async (t: Test) => {
    const cases: FrameSpec[] = [
      { opcode: TEXT, rsv: 1, payload: 'x' },
      { opcode: TEXT, rsv: 2, payload: 'x' },
      { opcode: BINARY, rsv: 3, payload: 'x' },
      { opcode: PING, rsv: 4, payload: 'x' },
      { opcode: CLOSE, rsv: 5, payload: Buffer.from([0x03, 0xe8]) },
      { opcode: TEXT, rsv: 7, payload: 'x' }
    ]
    for (const bad of cases) {
      const client = await transport.open('/echo')
      client.send({ opcode: TEXT, payload: 'before' }, bad, { opcode: PING, payload: 'after' })
      await expectFrame(t, client, TEXT, 'before')
      await expectFailure(t, transport, client, 1002)
    }
  })

  t.test('4 reserved opcodes', async (t: Test) => {
    for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
      const client = await transport.open('/echo')
      client.send({ opcode: TEXT, payload: 'before' }, { opcode, payload: 'reserved' }, { opcode: PING })
      await expectFrame(t, client, TEXT, 'before')
      await expectFailure(t, transport, client, 1002)
    }
  })

  t.test('5 fragmentation', async (t: Test) => {
    for (const opcode of [PING, PONG]) {
      const client = await transport.open('/echo')
      client.send({ opcode, fin: false, payload: 'frag' }, { opcode: 0, payload: 'ment' })
      await expectFailure(t, transport, client, 1002)
    }
    for (const path of ['/echo', '/echo/stream']) {
      const client = await transport.open(path)
      client.send({ opcode: TEXT, fin: false, payload: 'frag' }, { opcode: PING, payload: 'between' },
        { opcode: 0, fin: false, payload: 'men' }, { opcode: PONG, payload: 'ignored' }, { opcode: 0, payload: 'ts' })
      await expectFrame(t, client, PONG, 'between')
      const echoed: Buffer[] = []
      for (;;) {
        const frame = await client.next()
        t.ok(frame !== null && (frame.opcode === TEXT || frame.opcode === 0), 'only the echo follows')
        echoed.push(frame!.payload)
        if (frame!.fin) break
      }
      t.equal(Buffer.concat(echoed).toString(), 'fragments')
      await closeCleanly(t, transport, client)
    }
    const broken: FrameSpec[][] = [
      [{ opcode: 0, payload: 'no start' }],
      [{ opcode: 0, fin: false, payload: 'no start' }, { opcode: TEXT, payload: 'x' }],
      [{ opcode: TEXT, fin: false, payload: 'a' }, { opcode: TEXT, payload: 'b' }],
      [{ opcode: BINARY, fin: false, payload: 'a' }, { opcode: BINARY, fin: false, payload: 'b' }]
    ]
    for (const frames of broken) {
      const client = await transport.open('/echo')
      client.send(...frames)
      await expectFailure(t, transport, client, 1002)
    }
    const afterWhole = await transport.open('/echo')
    afterWhole.send({ opcode: TEXT, payload: 'whole' }, { opcode: 0, payload: 'stray' })
    await expectFrame(t, afterWhole, TEXT, 'whole')
    await expectFailure(t, transport, afterWhole, 1002)
  })

  t.test('6 UTF-8 in single frames and byte-sized fragments', async (t: Test) => {
    for (const text of VALID_UTF8) {
      const client = await transport.open('/echo')
      const frames: FrameSpec[] = [...text].map((byte, i) => ({ opcode: i === 0 ? TEXT : 0, fin: i === text.length - 1, payload: Buffer.from([byte]) }))
      client.send({ opcode: TEXT, payload: text }, ...frames)
      await expectFrame(t, client, TEXT, text)
      const fragmented = await client.next()
      t.ok(fragmented?.payload.equals(text), 'fragmented text echoed')
      await closeCleanly(t, transport, client)
    }
    for (const bytes of INVALID_UTF8) {
      const whole = await transport.open('/echo')
      whole.send({ opcode: TEXT, payload: bytes })
      await expectFailure(t, transport, whole, 1007)
      const split = await transport.open('/echo')
      split.send(...[...bytes].map((byte, i) => ({ opcode: i === 0 ? TEXT : 0, fin: i === bytes.length - 1, payload: Buffer.from([byte]) })))
      await expectFailure(t, transport, split, 1007)
    }
  })

  t.test('6 UTF-8 fails fast, before the message ends', async (t: Test) => {
    const client = await transport.open('/echo')
    // κόσμε followed by a surrogate: hopeless as soon as ED A0 is seen; the final fragment is never sent.
    client.send({ opcode: TEXT, fin: false, payload: Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xed, 0xa0]) })
    await expectFailure(t, transport, client, 1007)
  })

  t.test('7 close handling', async (t: Test) => {
    const empty = await transport.open('/echo')
    empty.send({ opcode: CLOSE })
    await expectClose(t, transport, empty, null)

    const oneByte = await transport.open('/echo')
    oneByte.send({ opcode: CLOSE, payload: Buffer.from([0x03]) })
    await expectFailure(t, transport, oneByte, 1002)

    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]) {
      const client = await transport.open('/echo')
      const payload = Buffer.alloc(2)
      payload.writeUInt16BE(code)
      client.send({ opcode: CLOSE, payload })
      await expectClose(t, transport, client, code)
    }
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
      const client = await transport.open('/echo')
      const payload = Buffer.alloc(2)
      payload.writeUInt16BE(code)
      client.send({ opcode: CLOSE, payload })
      await expectFailure(t, transport, client, 1002)
    }
    const longReason = await transport.open('/echo')
    longReason.send({ opcode: CLOSE, payload: Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(123, 'r')]) })
    await expectClose(t, transport, longReason, 1000)

    const badReason = await transport.open('/echo')
    badReason.send({ opcode: CLOSE, payload: Buffer.from([0x03, 0xe8, 0xce, 0xba, 0xed, 0xa0, 0x80]) })
    await expectFailure(t, transport, badReason, 1007)

    const afterClose = await transport.open('/echo')
    afterClose.send({ opcode: CLOSE, payload: Buffer.from([0x03, 0xe8]) }, { opcode: TEXT, payload: 'ignored' }, { opcode: PING })
    await expectClose(t, transport, afterClose, 1000)
  })

  t.test('9 limits: big messages in varied fragment sizes', async (t: Test) => {
    for (const [size, fragment] of [[1 << 20, 1 << 20], [4 << 20, 65536], [16 << 20, 1 << 20], [256 << 10, 4096]] as const) {
      const client = await transport.open('/echo')
      const payload = Buffer.alloc(size)
      for (let i = 0; i < size; i++) payload[i] = i % 251
      const frames: FrameSpec[] = []
      for (let offset = 0; offset < size; offset += fragment) {
        frames.push({ opcode: offset === 0 ? BINARY : 0, fin: offset + fragment >= size, payload: payload.subarray(offset, offset + fragment) })
      }
      client.send(...frames)
      const echoed = await client.next()
      t.equal(echoed?.payload.length, size, `${size} bytes echoed`)
      t.ok(echoed?.payload.equals(payload), 'intact')
      await closeCleanly(t, transport, client)
    }
  })
}
