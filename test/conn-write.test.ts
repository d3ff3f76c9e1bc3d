// Conn writing over loopback TCP, checked frame by frame on a raw peer: framing of every length,
// backpressure against a peer that does not read, many concurrent writers, nextWriter fragments,
// PreparedMessage (one server frame for every connection, a fresh mask per client send) and the
// write-buffer pool.
import t from 'tap'
import { prng, randomBytes } from './helpers/frames.js'
import { closePayload, isSettledSoon, rawPeer, sleep, stallingSize, type WireMessage } from './helpers/raw.js'
import { connPair } from './helpers/tcp-pair.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { SimpleBufferPool, type BufferPool } from '../lib/buffer-pool.js'
import { toPayload } from '../lib/protocol/framing.js'

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const MiB = 1024 * 1024

t.test('writeMessage sends one frame with the shortest length encoding, unmasked from a server', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const cases: Array<[number, 7 | 16 | 64]> = [[0, 7], [125, 7], [126, 16], [65535, 16], [65536, 64], [300_000, 64]]
  const random = prng(10)
  for (const [length, encoding] of cases) {
    const payload = randomBytes(random, length)
    await conn.writeMessage(BINARY, payload)
    const frame = await wire.nextFrame()
    t.same(
      { fin: frame.fin, rsv: frame.rsv, opcode: frame.opcode, masked: frame.maskKey !== undefined, encoding: frame.lengthEncoding },
      { fin: true, rsv: 0, opcode: BINARY, masked: false, encoding },
      `${length} bytes: one final frame, ${encoding}-bit length`
    )
    t.ok(frame.payload.equals(payload), `${length} bytes intact`)
  }
})

t.test('a client Conn masks every frame with a fresh key', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({}, false)
  t.teardown(cleanup)
  const payload = randomBytes(prng(11), 70_000)
  await conn.writeMessage(BINARY, payload)
  await conn.writeMessage(BINARY, payload)
  await conn.writeMessage(TEXT, '')
  const frames = [await wire.nextFrame(), await wire.nextFrame(), await wire.nextFrame()]
  t.ok(frames.every((frame) => frame.maskKey !== undefined), 'all masked')
  t.ok(frames[0]!.payload.equals(payload) && frames[1]!.payload.equals(payload), 'unmasked payload intact')
  t.notOk(frames[0]!.wirePayload.equals(frames[1]!.wirePayload), 'same data, different bytes on the wire')
  t.equal(frames[2]!.payload.length, 0)
  t.equal(payload[0], randomBytes(prng(11), 1)[0], "the caller's buffer was not masked in place")
})

t.test('writeMessage accepts strings, Buffers, ArrayBuffers and typed-array views', async (t) => {
  const { server, client, cleanup } = await connPair()
  t.teardown(cleanup)
  const backing = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7])
  const inputs: Array<[unknown, string]> = [
    ['h\u00e9', Buffer.from('h\u00e9').toString('hex')],
    [Buffer.from([9, 8]), '0908'],
    [backing.buffer, '0001020304050607'],
    [backing.subarray(2, 5), '020304'],
    [new DataView(backing.buffer, 5, 2), '0506'],
    [new Uint16Array([0x0102]), Buffer.from(new Uint16Array([0x0102]).buffer).toString('hex')]
  ]
  for (const [input] of inputs) await client.writeMessage(BINARY, input as Buffer)
  for (const [, hex] of inputs) t.equal((await server.readMessage()).data.toString('hex'), hex)
  t.equal(toPayload(42 as unknown as string), undefined, 'other values are not payloads')
  await t.rejects(client.writeMessage(BINARY, 42 as unknown as string), { name: 'UsageError' }, 'writeMessage rejects them')
  await t.rejects(client.writeControl(9, {} as unknown as string), { name: 'UsageError' }, 'writeControl rejects them')
  const writer = await client.nextWriter(BINARY)
  await t.rejects(writer.write(null as unknown as string), { name: 'UsageError' }, 'a message writer rejects them')
  await writer.close()
  t.throws(() => new PreparedMessage(BINARY, 7 as unknown as string), { name: 'UsageError' }, 'PreparedMessage throws')
})

t.test('writes to a peer that does not read wait for drain, then resolve in order', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.pause()
  // More than the kernel's socket buffers can hold, so the writes cannot all complete unread.
  const count = Math.ceil(stallingSize() / MiB)
  const payloadFor = (i: number): Buffer => {
    const payload = Buffer.alloc(MiB, i)
    payload.writeUInt32BE(i, 0)
    return payload
  }
  let resumed = false
  let resolvedBeforeResume = 0
  let current: Promise<void> | undefined
  const progress = { done: false }
  const writing = (async () => {
    for (let i = 0; i < count; i++) {
      current = conn.writeMessage(BINARY, payloadFor(i))
      await current
      if (!resumed) resolvedBeforeResume++
    }
    progress.done = true
  })()
  // Wait until the writes are stuck: bytes wait in the socket and their number stops changing.
  for (let last = -1, stable = 0; stable < 3 && !progress.done; await sleep(20)) {
    const now = conn.bufferedAmount
    stable = now > 0 && now === last ? stable + 1 : 0
    last = now
  }
  t.notOk(progress.done, 'the writes could not all complete while the peer did not read')
  t.ok(resolvedBeforeResume < count, `${resolvedBeforeResume} of ${count} writes resolved before the peer read`)
  t.ok(conn.bufferedAmount > 0, 'bytes wait in the socket')
  t.notOk(await isSettledSoon(current!), 'the current write is pending')
  resumed = true
  peer.resume()
  let intact = 0
  for (let i = 0; i < count; i++) {
    const message = await wire.nextMessage()
    if (message.opcode === BINARY && message.data.equals(payloadFor(i))) intact++
  }
  await writing
  t.equal(intact, count, 'every message arrived intact and in order')
})

t.test('200 concurrent writers and two message writers never interleave frames', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 1000 })
  t.teardown(cleanup)
  const random = prng(12)
  const expected: Array<{ opcode: number, data: Buffer }> = []
  const writes: Array<Promise<void>> = []
  const firstWriter = await conn.nextWriter(TEXT)
  const firstText = Buffer.from('first writer '.repeat(500))
  expected.push({ opcode: TEXT, data: firstText })
  let secondWriter: ReturnType<typeof conn.nextWriter> | undefined
  const secondData = randomBytes(random, 7777)
  const prepared = new PreparedMessage(BINARY, randomBytes(random, 3000))
  for (let i = 0; i < 200; i++) {
    if (i === 100) {
      secondWriter = conn.nextWriter(BINARY)
      expected.push({ opcode: BINARY, data: secondData })
    }
    if (i % 50 === 7) {
      writes.push(conn.writePreparedMessage(prepared))
      expected.push({ opcode: BINARY, data: prepared.data })
    }
    const size = 4 + Math.floor(random() ** 3 * 100_000)
    const data = randomBytes(random, size)
    data.writeUInt32BE(i, 0)
    writes.push(conn.writeMessage(BINARY, data))
    expected.push({ opcode: BINARY, data })
  }
  // Feed the open writer in uneven pieces while the queue waits, with control frames in between.
  for (let at = 0; at < firstText.length; at += 777) {
    await firstWriter.write(firstText.subarray(at, at + 777))
    await conn.writeControl(PING, `ping ${at}`)
  }
  await firstWriter.close()
  const second = await secondWriter!
  for (let at = 0; at < secondData.length; at += 2000) await second.write(secondData.subarray(at, at + 2000))
  await second.close()
  await Promise.all(writes)
  const received: WireMessage[] = []
  for (let i = 0; i < expected.length; i++) received.push(await wire.nextMessage())
  t.same(received.map((m) => m.opcode), expected.map((m) => m.opcode), 'types in call order')
  const mismatched = received.filter((m, i) => !m.data.equals(expected[i]!.data)).length
  t.equal(mismatched, 0, `all ${expected.length} messages intact and in call order`)
  t.ok(received[0]!.frames.every((frame) => frame.payload.length <= 1000), 'writer fragments are at most writeBufferSize')
  t.equal(wire.controlFrames.length, Math.ceil(firstText.length / 777), 'every ping went out')
})

t.test('nextWriter sends fragments of at most writeBufferSize and the final frame on close', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 1000 })
  t.teardown(cleanup)
  const data = randomBytes(prng(13), 3500)
  const writer = await conn.nextWriter(BINARY)
  t.equal(writer.type, BINARY)
  await writer.write(data.subarray(0, 1))
  await writer.write(data.subarray(1, 1000))
  await writer.write(new Uint8Array(data.subarray(1000)))
  const beforeClose = [await wire.nextFrame(), await wire.nextFrame()]
  t.same(beforeClose.map((f) => [f.opcode, f.fin, f.payload.length]), [[BINARY, false, 1000], [0, false, 1000]], 'full fragments go out as the buffer fills')
  t.notOk(writer.isClosed)
  await writer.close()
  t.ok(writer.isClosed)
  const afterClose = [await wire.nextFrame(), await wire.nextFrame()]
  t.same(afterClose.map((f) => [f.opcode, f.fin, f.payload.length]), [[0, false, 1000], [0, true, 500]], 'close sends the rest and the final frame')
  t.ok(Buffer.concat([...beforeClose, ...afterClose].map((f) => f.payload)).equals(data), 'the bytes are intact')
  await t.rejects(writer.write('more'), { name: 'WriteClosedError' }, 'write after close rejects')
  await writer.close()
  t.pass('a second close is harmless')

  const exact = await conn.nextWriter(TEXT)
  await exact.write('x'.repeat(2000))
  await exact.close()
  t.same((await wire.nextMessage()).frames.map((f) => [f.opcode, f.fin, f.payload.length]), [[TEXT, false, 1000], [0, true, 1000]], 'an exact multiple ends with a full final frame')

  const empty = await conn.nextWriter(TEXT)
  await empty.write('')
  await empty.close()
  t.same((await wire.nextMessage()).frames.map((f) => [f.opcode, f.fin, f.payload.length]), [[TEXT, true, 0]], 'an empty message is one empty final frame')
})

t.test('a client nextWriter masks each fragment with its own key', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 64 }, false)
  t.teardown(cleanup)
  const writer = await conn.nextWriter(BINARY)
  await writer.write(Buffer.alloc(200, 0x55))
  await writer.close()
  const message = await wire.nextMessage()
  t.same(message.frames.map((f) => f.payload.length), [64, 64, 64, 8])
  t.ok(message.data.equals(Buffer.alloc(200, 0x55)))
  t.ok(message.frames.every((f) => f.maskKey !== undefined), 'masked')
  t.equal(new Set(message.frames.map((f) => f.maskKey!.toString('hex'))).size, 4, 'four different keys')
})

t.test('writeMessage with a control type sends a control frame; other types reject', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  await conn.writeMessage(PING, 'via writeMessage')
  const frame = await wire.nextFrame()
  t.same([frame.opcode, frame.payload.toString()], [PING, 'via writeMessage'])
  await t.rejects(conn.writeMessage(3 as never, 'x'), { name: 'UsageError' })
  await t.rejects(conn.nextWriter(PING as never), { name: 'UsageError' })
})

// ---- PreparedMessage and the write-buffer pool ----

t.test('a prepared message sends identical bytes to every server connection', async (t) => {
  const peers = [await rawPeer(), await rawPeer(), await rawPeer()]
  for (const peer of peers) t.teardown(peer.cleanup)
  const source = Buffer.from('broadcast to everyone')
  const prepared = new PreparedMessage(TEXT, source)
  source.fill(0)
  t.equal(prepared.data.toString(), 'broadcast to everyone', 'the message keeps its own copy')
  t.equal(prepared.frameFor(true), prepared.frameFor(true), 'the server frame is built once')
  await Promise.all(peers.map(({ conn }) => conn.writePreparedMessage(prepared)))
  const frames = await Promise.all(peers.map(({ wire }) => wire.nextFrame()))
  const bytes = frames.map((f) => Buffer.concat([f.header, f.wirePayload]).toString('hex'))
  t.same(bytes, [bytes[0], bytes[0], bytes[0]], 'the same bytes on every connection')
  t.equal(bytes[0], prepared.frameFor(true).toString('hex'))
  t.same([frames[0]!.opcode, frames[0]!.fin, frames[0]!.maskKey, frames[0]!.payload.toString()], [TEXT, true, undefined, 'broadcast to everyone'])
})

t.test('a prepared message is masked afresh for each client send', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({}, false)
  t.teardown(cleanup)
  const prepared = new PreparedMessage(BINARY, new Uint8Array(300).fill(7))
  await conn.writePreparedMessage(prepared)
  await conn.writePreparedMessage(prepared)
  const [first, second] = [await wire.nextFrame(), await wire.nextFrame()]
  t.ok(first.maskKey !== undefined && second.maskKey !== undefined, 'both masked')
  t.not(first.maskKey!.toString('hex'), second.maskKey!.toString('hex'), 'with different keys')
  t.ok(first.payload.equals(prepared.data) && second.payload.equals(prepared.data), 'same payload once unmasked')
})

t.test('prepared messages queue behind an open writer; control ones do not', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const writer = await conn.nextWriter(TEXT)
  const queued = conn.writePreparedMessage(new PreparedMessage(BINARY, 'after the writer'))
  await conn.writePreparedMessage(new PreparedMessage(PING, 'now'))
  await writer.write('writer')
  await writer.close()
  await queued
  const frames = [await wire.nextFrame(), await wire.nextFrame(), await wire.nextFrame()]
  t.same(frames.map((f) => [f.opcode, f.payload.toString()]), [[PING, 'now'], [TEXT, 'writer'], [BINARY, 'after the writer']])
})

t.test('PreparedMessage refuses bad types and oversized control payloads', async (t) => {
  t.throws(() => new PreparedMessage(3 as never, 'x'), { name: 'UsageError' })
  t.throws(() => new PreparedMessage(PING, Buffer.alloc(126)), { name: 'UsageError' })
  t.equal(new PreparedMessage(CLOSE, closePayload(1000)).data.length, 2)
  t.equal(new PreparedMessage(BINARY, new ArrayBuffer(3)).data.length, 3)
})

t.test('nextWriter takes its buffer from the pool on the first write and gives it back on close', async (t) => {
  const pool = new SimpleBufferPool(1000)
  const pooled = Buffer.alloc(1000)
  pool.put(pooled)
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 1000, writeBufferPool: pool })
  t.teardown(cleanup)
  const writer = await conn.nextWriter(BINARY)
  t.equal(pool.idleCount, 1, 'opening a writer takes nothing')
  await writer.write('abc')
  t.equal(pool.idleCount, 0, 'the first write took the buffer')
  await writer.write(Buffer.alloc(2500, 1))
  await writer.close()
  t.equal(pool.idleCount, 1, 'close gave it back')
  t.equal(pool.get(), pooled, 'the very same buffer')
  pool.put(pooled)
  t.equal((await wire.nextMessage()).data.length, 2503)

  await conn.writeMessage(BINARY, Buffer.alloc(5000))
  const empty = await conn.nextWriter(TEXT)
  await empty.close()
  t.equal(pool.idleCount, 1, 'writeMessage and an empty writer leave the pool alone: an idle connection holds none')
  t.same((await wire.nextMessage()).data.length, 5000)
  t.same((await wire.nextMessage()).frames.map((f) => [f.opcode, f.fin, f.payload.length]), [[TEXT, true, 0]])
})

t.test('the pooled buffer comes back when the message fails', async (t) => {
  const pool = new SimpleBufferPool(16)
  const failed = await rawPeer({ writeBufferSize: 16, writeBufferPool: pool })
  t.teardown(failed.cleanup)
  const writer = await failed.conn.nextWriter(TEXT)
  await writer.write('buffered')
  await failed.conn.writeControl(CLOSE, closePayload(1000))
  await t.rejects(writer.close(), { name: 'CloseSentError' })
  t.equal(pool.idleCount, 1, 'returned after a refused final frame')

  const dropped = await rawPeer({ writeBufferSize: 16, writeBufferPool: pool })
  t.teardown(dropped.cleanup)
  const abandoned = await dropped.conn.nextWriter(TEXT)
  await abandoned.write('buffered')
  t.equal(pool.idleCount, 0)
  dropped.conn.terminate()
  await dropped.conn.closed
  t.equal(pool.idleCount, 1, 'returned when the connection went away')

  const racing = await rawPeer({ writeBufferSize: 16, writeBufferPool: pool })
  t.teardown(racing.cleanup)
  const interrupted = await racing.conn.nextWriter(BINARY)
  const sending = interrupted.write(Buffer.alloc(100))
  racing.conn.terminate()
  const error = await sending.catch((e: unknown) => e)
  t.match(error, { name: 'WriteClosedError' }, 'a write whose frames could not go out fails with WriteClosedError')
  await racing.conn.closed
  t.equal(await racing.conn.writeMessage(TEXT, 'x').catch((e: unknown) => e), error, 'the same error as every later write')
  await t.rejects(interrupted.close(), error as Error)
  t.equal(pool.idleCount, 1, 'and the buffer is back in the pool')
})

t.test('a pool buffer of the wrong size is not used; SimpleBufferPool keeps only its own size', async (t) => {
  const puts: Buffer[] = []
  const tooSmall: BufferPool = { get: () => Buffer.alloc(10), put: (buffer) => { puts.push(buffer) } }
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 100, writeBufferPool: tooSmall })
  t.teardown(cleanup)
  const writer = await conn.nextWriter(BINARY)
  await writer.write(Buffer.alloc(150, 3))
  await writer.close()
  t.same((await wire.nextMessage()).frames.map((f) => f.payload.length), [100, 50], 'the writer used a buffer of its own size')
  t.same(puts.map((b) => b.length), [100], 'and handed that one to the pool')

  const pool = new SimpleBufferPool(8, 2)
  pool.put(Buffer.alloc(9))
  t.equal(pool.idleCount, 0, 'a buffer of another size is dropped')
  pool.put(Buffer.alloc(8))
  pool.put(Buffer.alloc(8))
  pool.put(Buffer.alloc(8))
  t.equal(pool.idleCount, 2, 'no more than maxIdle are kept')
  t.equal(pool.get()?.length, 8)
  pool.get()
  t.equal(pool.get(), undefined, 'an empty pool gives undefined')
})
