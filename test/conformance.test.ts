// Conformance cases after the Autobahn TestSuite's categories (1 framing, 2 pings/pongs, 3 reserved
// bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits), run against the echo
// example in its own process by an independent byte-level client. Every case is strict: the exact
// close code, sent as early as the RFC allows, and nothing after it.
import t, { type Test } from 'tap'
import type { ChildProcess } from 'node:child_process'
import { WireClient, clientFrame, type FrameSpec } from './helpers/wire-client.js'
import { startEchoExample } from './helpers/echo-example.js'

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const PONG = 10

let child: ChildProcess
let port = 0

t.before(async () => {
  ({ child, port } = await startEchoExample())
})

t.teardown(() => { child.kill() })

async function open (path = '/echo'): Promise<WireClient> {
  const client = await WireClient.open(port, path)
  t.teardown(() => { client.destroy() })
  return client
}

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

async function expectClose (t: Test, client: WireClient, code: number | null): Promise<void> {
  const frame = await client.next()
  t.equal(frame?.opcode, CLOSE, 'next frame is a close')
  if (code === null) t.equal(frame?.payload.length, 0, 'close without status')
  else t.equal(frame?.payload.readUInt16BE(0), code, `close code ${code}`)
  await client.closedByServer()
  t.pass('server ended TCP')
}

/** Sends a close, expects it echoed, and that nothing else came before it. */
async function closeCleanly (t: Test, client: WireClient): Promise<void> {
  client.send({ opcode: CLOSE, payload: Buffer.from([0x03, 0xe8]) })
  await expectClose(t, client, 1000)
}

for (const path of ['/echo', '/echo/stream', '/echo/prepared']) {
  t.test(`1 framing on ${path}`, async (t: Test) => {
    for (const opcode of [TEXT, BINARY]) {
      for (const size of [0, 125, 126, 127, 128, 65535, 65536]) {
        const client = await open(path)
        const payload = Buffer.alloc(size, opcode === TEXT ? '*' : 0xfe)
        client.send({ opcode, payload })
        await expectFrame(t, client, opcode, payload)
        await closeCleanly(t, client)
      }
    }
  })
}

t.test('2 pings and pongs', async (t: Test) => {
  const sizes = [0, 1, 125]
  for (const size of sizes) {
    const client = await open()
    const payload = Buffer.alloc(size, 0xaa)
    client.send({ opcode: PING, payload })
    await expectFrame(t, client, PONG, payload)
    await closeCleanly(t, client)
  }
  const big = await open()
  big.send({ opcode: PING, payload: Buffer.alloc(126) })
  await expectClose(t, big, 1002)

  const unsolicited = await open()
  unsolicited.send({ opcode: PONG, payload: 'unsolicited' }, { opcode: TEXT, payload: 'after' })
  await expectFrame(t, unsolicited, TEXT, 'after')
  await closeCleanly(t, unsolicited)

  const many = await open()
  const pings = Array.from({ length: 10 }, (_, i) => ({ opcode: PING, payload: `ping ${i}` }))
  many.send(...pings)
  for (let i = 0; i < 10; i++) await expectFrame(t, many, PONG, `ping ${i}`)
  await closeCleanly(t, many)

  const bytewise = await open()
  const frame = clientFrame({ opcode: PING, payload: 'slow ping' })
  for (const byte of frame) {
    bytewise.sendRaw(Buffer.from([byte]))
    await new Promise((resolve) => setImmediate(resolve))
  }
  await expectFrame(t, bytewise, PONG, 'slow ping')
  await closeCleanly(t, bytewise)
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
    const client = await open()
    client.send({ opcode: TEXT, payload: 'before' }, bad, { opcode: PING, payload: 'after' })
    await expectFrame(t, client, TEXT, 'before')
    await expectClose(t, client, 1002)
  }
})

t.test('4 reserved opcodes', async (t: Test) => {
  for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    const client = await open()
    client.send({ opcode: TEXT, payload: 'before' }, { opcode, payload: 'reserved' }, { opcode: PING })
    await expectFrame(t, client, TEXT, 'before')
    await expectClose(t, client, 1002)
  }
})

t.test('5 fragmentation', async (t: Test) => {
  for (const opcode of [PING, PONG]) {
    const client = await open()
    client.send({ opcode, fin: false, payload: 'frag' }, { opcode: 0, payload: 'ment' })
    await expectClose(t, client, 1002)
  }
  for (const path of ['/echo', '/echo/stream']) {
    const client = await open(path)
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
    await closeCleanly(t, client)
  }
  const broken: FrameSpec[][] = [
    [{ opcode: 0, payload: 'no start' }],
    [{ opcode: 0, fin: false, payload: 'no start' }, { opcode: TEXT, payload: 'x' }],
    [{ opcode: TEXT, fin: false, payload: 'a' }, { opcode: TEXT, payload: 'b' }],
    [{ opcode: BINARY, fin: false, payload: 'a' }, { opcode: BINARY, fin: false, payload: 'b' }]
  ]
  for (const frames of broken) {
    const client = await open()
    client.send(...frames)
    await expectClose(t, client, 1002)
  }
  const afterWhole = await open()
  afterWhole.send({ opcode: TEXT, payload: 'whole' }, { opcode: 0, payload: 'stray' })
  await expectFrame(t, afterWhole, TEXT, 'whole')
  await expectClose(t, afterWhole, 1002)
})

const VALID_UTF8 = [
  'Hello-µ@ßöäüàá-UTF-8!!', 'κόσμε', '\u0000', '\u007f', '\u0080', '\u07ff', '\u0800', '\uffff', '\u{10000}', '\u{10ffff}'
].map((s) => Buffer.from(s))
const INVALID_UTF8 = [
  [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xf0, 0x80, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80],
  [0xf5], [0xff], [0x80], [0xce, 0xba, 0xe1, 0xbd], [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64]
].map((b) => Buffer.from(b))

t.test('6 UTF-8 in single frames and byte-sized fragments', async (t: Test) => {
  for (const text of VALID_UTF8) {
    const client = await open()
    const frames: FrameSpec[] = [...text].map((byte, i) => ({ opcode: i === 0 ? TEXT : 0, fin: i === text.length - 1, payload: Buffer.from([byte]) }))
    client.send({ opcode: TEXT, payload: text }, ...frames)
    await expectFrame(t, client, TEXT, text)
    const fragmented = await client.next()
    t.ok(fragmented?.payload.equals(text), 'fragmented text echoed')
    await closeCleanly(t, client)
  }
  for (const bytes of INVALID_UTF8) {
    const whole = await open()
    whole.send({ opcode: TEXT, payload: bytes })
    await expectClose(t, whole, 1007)
    const split = await open()
    split.send(...[...bytes].map((byte, i) => ({ opcode: i === 0 ? TEXT : 0, fin: i === bytes.length - 1, payload: Buffer.from([byte]) })))
    await expectClose(t, split, 1007)
  }
})

t.test('6 UTF-8 fails fast, before the message ends', async (t: Test) => {
  const client = await open()
  // κόσμε followed by a surrogate: hopeless as soon as ED A0 is seen; the final fragment is never sent.
  client.send({ opcode: TEXT, fin: false, payload: Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xed, 0xa0]) })
  await expectClose(t, client, 1007)
})

t.test('7 close handling', async (t: Test) => {
  const empty = await open()
  empty.send({ opcode: CLOSE })
  await expectClose(t, empty, null)

  const oneByte = await open()
  oneByte.send({ opcode: CLOSE, payload: Buffer.from([0x03]) })
  await expectClose(t, oneByte, 1002)

  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]) {
    const client = await open()
    const payload = Buffer.alloc(2)
    payload.writeUInt16BE(code)
    client.send({ opcode: CLOSE, payload })
    await expectClose(t, client, code)
  }
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    const client = await open()
    const payload = Buffer.alloc(2)
    payload.writeUInt16BE(code)
    client.send({ opcode: CLOSE, payload })
    await expectClose(t, client, 1002)
  }
  const longReason = await open()
  longReason.send({ opcode: CLOSE, payload: Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(123, 'r')]) })
  await expectClose(t, longReason, 1000)

  const badReason = await open()
  badReason.send({ opcode: CLOSE, payload: Buffer.from([0x03, 0xe8, 0xce, 0xba, 0xed, 0xa0, 0x80]) })
  await expectClose(t, badReason, 1007)

  const afterClose = await open()
  afterClose.send({ opcode: CLOSE, payload: Buffer.from([0x03, 0xe8]) }, { opcode: TEXT, payload: 'ignored' }, { opcode: PING })
  await expectClose(t, afterClose, 1000)
})

t.test('9 limits: big messages in varied fragment sizes', async (t: Test) => {
  for (const [size, fragment] of [[1 << 20, 1 << 20], [4 << 20, 65536], [16 << 20, 1 << 20], [256 << 10, 4096]] as const) {
    const client = await open()
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
    await closeCleanly(t, client)
  }
})
