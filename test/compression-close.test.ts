// The end of a compressed connection over real TCP: a message whose inflation is still running
// when the peer's close frame or TCP end arrives is delivered before the close error, and the codec
// is freed once the last inflation settles (never before, never twice, nothing left behind).
import t from 'tap'
import { constants, inflateRawSync } from 'node:zlib'
import type { Conn } from '../lib/conn/conn.js'
import { PerMessageDeflate } from '../lib/deflate/codec.js'
import { zlibLimiter } from '../lib/deflate/limiter.js'
import { CloseError, CloseSentError, ReadLimitError, TimeoutError, WriteClosedError } from '../lib/protocol/errors.js'
import { BinaryMessage, CloseMessage, TextMessage } from '../lib/protocol/constants.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { Upgrader, type UpgraderOptions } from '../lib/upgrader.js'
import { compressPayload } from './helpers/deflate.js'
import { UpgradeServer, textOf } from './helpers/compression-peers.js'
import { WireClient, clientFrame, type WireFrame } from './helpers/wire-client.js'

const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate\r\n'

/** Records every PerMessageDeflate.close() and whether the codec still held a zlib context after it. */
function spyOnCodecClose (t: { teardown: (fn: () => unknown) => void }): Array<{ leftContexts: boolean }> {
  const calls: Array<{ leftContexts: boolean }> = []
  const original = PerMessageDeflate.prototype.close
  PerMessageDeflate.prototype.close = function (this: PerMessageDeflate) {
    original.call(this)
    const { compressor, decompressor } = this.contexts
    calls.push({ leftContexts: compressor || decompressor })
  }
  t.teardown(() => { PerMessageDeflate.prototype.close = original })
  return calls
}

async function server (t: { teardown: (fn: () => unknown) => void }, readLimit = 64 * 1024 * 1024, options: UpgraderOptions = {}): Promise<{ port: number, next: () => Promise<Conn> }> {
  const http = await UpgradeServer.start()
  const upgrader = new Upgrader({ compression: true, readLimit, ...options })
  const conns: Conn[] = []
  http.route('/', (req, socket, head) => { upgrader.upgrade(req, socket, head).then((conn) => { conns.push(conn) }, () => {}) })
  t.teardown(async () => {
    for (const conn of conns) conn.terminate()
    await http.close()
  })
  let taken = 0
  return {
    port: http.port,
    next: async () => {
      while (conns.length <= taken) await new Promise((resolve) => setImmediate(resolve))
      return conns[taken++]!
    }
  }
}

/** Reads until the connection fails; resolves with every message length and the final error. */
async function readAll (conn: Conn): Promise<{ lengths: number[], error: Error }> {
  const lengths: number[] = []
  for (;;) {
    try {
      lengths.push((await conn.readMessage()).data.length)
    } catch (error) {
      return { lengths, error: error as Error }
    }
  }
}

// 8 MiB of JSON inflate in hundreds of 16 KiB steps on the threadpool: the close frame or the TCP
// end that follows in the same write is parsed long before the inflation is over.
const big = textOf(8 * 1024 * 1024, 5)
const bigCompressed = compressPayload(big)

t.test('a close frame right behind a compressed message: the message first, then the CloseError', async (t) => {
  const closes = spyOnCodecClose(t)
  const { port, next } = await server(t)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  client.sendRaw(Buffer.concat([
    clientFrame({ opcode: 1, rsv: 4, payload: bigCompressed }),
    clientFrame({ opcode: 8, payload: Buffer.from([0x03, 0xe8]) })
  ]))
  const { lengths, error } = await readAll(conn)
  t.same(lengths, [big.length], 'the 8 MiB message arrived whole')
  t.ok(error instanceof CloseError && error.code === 1000, 'then the read failed with the peer\'s close (1000)')
  const echoed = await client.next()
  t.equal(echoed?.opcode, 8, 'the server answered the close')
  client.socket.end()
  await conn.closed
  await new Promise((resolve) => setImmediate(resolve))
  t.same(closes, [{ leftContexts: false }], 'the codec was closed once, holding no zlib context')
})

t.test('TCP ending right behind compressed messages: all are delivered, then 1006, then the codec goes', async (t) => {
  const closes = spyOnCodecClose(t)
  const { port, next } = await server(t)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const small = Buffer.from('{"after":"the big one"}')
  client.sendRaw(Buffer.concat([
    clientFrame({ opcode: 1, rsv: 4, payload: bigCompressed }),
    clientFrame({ opcode: 1, rsv: 4, payload: compressPayload(small) })
  ]))
  client.socket.end()
  const { lengths, error } = await readAll(conn)
  t.same(lengths, [big.length, small.length], 'both messages arrived, in order')
  t.ok(error instanceof CloseError && error.code === 1006, 'then the read failed with 1006')
  await conn.closed
  t.same(closes, [{ leftContexts: false }], 'the codec was closed once, after the socket, holding no zlib context')
  await t.rejects(conn.writeMessage(TextMessage, textOf(4096, 1)), WriteClosedError, 'a compressed write after the end is refused')
})

t.test('an inflation that fails after TCP ended still frees the codec, and nothing escapes', async (t) => {
  const closes = spyOnCodecClose(t)
  const { port, next } = await server(t, 1024 * 1024)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const reading = readAll(conn)
  // 8 MiB (8 KiB compressed) against a 1 MiB limit: the limit is reached some 64 inflate steps after TCP ended.
  client.sendRaw(clientFrame({ opcode: 1, rsv: 4, payload: compressPayload(Buffer.alloc(8 * 1024 * 1024, 'a')) }))
  client.socket.end()
  const { lengths, error } = await reading
  t.same(lengths, [], 'the over-limit message was not delivered')
  // The message came before the end on the wire, and a reader was waiting for it: its failure is reported.
  t.ok(error instanceof ReadLimitError, 'the read failed with the message\'s own failure (1009), not the end of TCP behind it')
  await conn.closed
  while (closes.length === 0) await new Promise((resolve) => setImmediate(resolve))
  t.same(closes, [{ leftContexts: false }], 'the codec was closed once, holding no zlib context')
})

t.test('a compressed write queued when the connection dies rejects, and later ones too', async (t) => {
  const { port, next } = await server(t)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const writes = [conn.writeMessage(TextMessage, textOf(1024 * 1024, 1)), conn.writeMessage(TextMessage, textOf(4096, 2))]
  conn.terminate()
  const results = await Promise.allSettled(writes)
  t.same(results.map((r) => r.status), ['rejected', 'rejected'], 'both writes failed')
  t.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof WriteClosedError), 'with WriteClosedError')
  client.destroy()
})

t.test('a read that fails in the middle of a message: the rest of it and later messages are dropped, the connection goes on', async (t) => {
  const { port, next } = await server(t)
  for (const compressed of [true, false]) {
    const client = await WireClient.open(port, '/', OFFER)
    const conn = await next()
    const kind = compressed ? 'compressed' : 'uncompressed'
    // A ping handler that throws fails the read side (like a read deadline) between two fragments.
    conn.setPingHandler(() => { throw new Error('handler failed') })
    const reading = conn.readMessage()
    const data = compressed ? compressPayload(textOf(3000, 4)) : textOf(3000, 4)
    const rsv = compressed ? 4 : 0
    client.send({ opcode: 1, rsv, fin: false, payload: data.subarray(0, 1000) }, { opcode: 9, payload: 'first' })
    await t.rejects(reading, { message: 'handler failed' }, `${kind}: the read failed between the fragments`)
    conn.setPingHandler(null)
    client.send(
      { opcode: 0, payload: data.subarray(1000) },
      { opcode: 1, rsv, payload: compressed ? compressPayload(Buffer.from('later')) : 'later' },
      { opcode: 9, payload: 'alive' })
    let pong = await client.next()
    while (pong !== null && pong.opcode !== 10) pong = await client.next()
    t.equal(pong?.payload.toString(), 'alive', `${kind}: the rest was dropped and the connection still answers pings`)
    await t.rejects(conn.readMessage(), { message: 'handler failed' }, `${kind}: reads keep failing with the first error`)
    client.destroy()
    await conn.closed
  }
})

/** Every frame the server sends until it ends TCP, answering its close frame when it comes. */
async function framesUntilEnd (client: WireClient): Promise<WireFrame[]> {
  const frames: WireFrame[] = []
  for (let frame = await client.next(); frame !== null; frame = await client.next()) {
    frames.push(frame)
    if (frame.opcode === 8) client.send({ opcode: 8, payload: frame.payload })
  }
  return frames
}

/** Runs `action` when the next zlib job starts (the compression of a write, here), then lets the job go on. */
function onNextZlibJob (action: () => void): void {
  const original = zlibLimiter.run
  zlibLimiter.run = function <T> (this: typeof zlibLimiter, job: () => Promise<T>): Promise<T> {
    zlibLimiter.run = original
    action()
    return original.call(this, job) as Promise<T>
  }
}

t.test('a close frame written while a message is being compressed stays the last frame', async (t) => {
  // A big write buffer: a streamed message is compressed once, when its writer closes.
  const { port, next } = await server(t, undefined, { writeBufferSize: 256 * 1024 })
  const closePayload = Buffer.from([0x03, 0xe8])
  const scenarios: Array<[string, (conn: Conn) => Promise<unknown>]> = [
    ['writeMessage', async (conn) => await Promise.allSettled([conn.writeMessage(TextMessage, textOf(64 * 1024, 1)), conn.writeMessage(TextMessage, 'queued behind it')])],
    ['writePreparedMessage', async (conn) => await conn.writePreparedMessage(new PreparedMessage(BinaryMessage, textOf(64 * 1024, 2)))],
    ['a streamed message', async (conn) => {
      const writer = await conn.nextWriter(TextMessage)
      await writer.write(textOf(64 * 1024, 3))
      await writer.close()
    }]
  ]
  for (const [name, write] of scenarios) {
    const client = await WireClient.open(port, '/', OFFER)
    const conn = await next()
    onNextZlibJob(() => { conn.writeControl(CloseMessage, closePayload).catch(() => {}) })
    const outcome = await write(conn).then((value) => value, (error: unknown) => error)
    const errors = Array.isArray(outcome) ? outcome.map((r: PromiseSettledResult<void>) => r.status === 'rejected' ? r.reason : undefined) : [outcome]
    t.ok(errors.every((e) => e instanceof CloseSentError), `${name}: the write rejects with CloseSentError`)
    const frames = await framesUntilEnd(client)
    t.same(frames.map((f) => f.opcode), [8], `${name}: the close frame was the only frame`)
    await conn.closed
  }
})

t.test('a streamed compressed message cut by the end of the connection: its writer fails, the codec is freed', async (t) => {
  const closes = spyOnCodecClose(t)
  const { port, next } = await server(t)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const writer = await conn.nextWriter(BinaryMessage)
  await writer.write(textOf(64 * 1024, 6))
  const first = await client.next()
  t.same([first?.opcode, first?.rsv, first?.fin], [2, 4, false], 'the first fragment went out compressed')
  client.destroy()
  await conn.closed
  await t.rejects(writer.close(), WriteClosedError, 'finishing the message fails')
  await t.rejects(writer.write('more'), WriteClosedError, 'and so does writing more')
  t.same(closes, [{ leftContexts: false }], 'the codec was closed, holding no zlib context')
})

t.test('close() while a message compresses: the message goes first, then the close frame', async (t) => {
  const { port, next } = await server(t)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const data = textOf(256 * 1024, 8)
  const written = conn.writeMessage(TextMessage, data)
  const closing = conn.close(1001, 'going away')
  const frames = await framesUntilEnd(client)
  t.same(frames.map((f) => [f.opcode, f.rsv]), [[1, 4], [8, 0]], 'the compressed message, then the close frame')
  t.same(inflateRawSync(Buffer.concat([frames[0]!.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH }), data, 'the message is whole')
  t.equal(frames[1]!.payload.readUInt16BE(0), 1001, 'with the code given')
  await written
  await closing
})

t.test('a write deadline that passes while a message compresses fails it and every write queued behind it', async (t) => {
  const { port, next } = await server(t)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const compressing = conn.writeMessage(TextMessage, textOf(256 * 1024, 9))
  const queued = conn.writeMessage(TextMessage, 'queued')
  conn.setWriteDeadline(Date.now() - 1)
  await t.rejects(conn.writeMessage(TextMessage, 'late'), TimeoutError, 'a new write fails at once')
  await t.rejects(compressing, TimeoutError, 'the message being compressed is not sent')
  await t.rejects(queued, TimeoutError, 'nor the one queued behind it')
  conn.terminate()
  t.same(await framesUntilEnd(client), [], 'nothing went out')
})

t.test('compressed messages behind a failed inflation do not keep the codec alive', async (t) => {
  const closes = spyOnCodecClose(t)
  const { port, next } = await server(t, 1024 * 1024)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const reading = readAll(conn)
  // A bomb, then, once the server has failed the connection, more compressed messages: they reach
  // a codec whose inflation already failed.
  client.send({ opcode: 2, rsv: 4, payload: compressPayload(Buffer.alloc(8 * 1024 * 1024)) })
  const { lengths, error } = await reading
  t.same(lengths, [], 'nothing was delivered')
  t.match(error, { closeCode: 1009, code: 'ERR_WS_READ_LIMIT' }, 'the read failed with 1009')
  const closeFrame = await client.next()
  t.equal(closeFrame?.opcode, 8, 'the server sent its close frame')
  client.send({ opcode: 1, rsv: 4, payload: compressPayload(Buffer.from('after the bomb')) }, { opcode: 1, rsv: 4, payload: compressPayload(Buffer.alloc(0)) })
  client.socket.end()
  await conn.closed
  t.same(closes, [{ leftContexts: false }], 'and the codec was closed once, holding no zlib context')
})

t.test('a message compressed at once that fails rejects its write and leaves the connection usable', async (t) => {
  const { port, next } = await server(t)
  const client = await WireClient.open(port, '/', OFFER)
  const conn = await next()
  const original = PerMessageDeflate.prototype.compressSync
  PerMessageDeflate.prototype.compressSync = function () {
    PerMessageDeflate.prototype.compressSync = original
    throw new Error('zlib broke')
  }
  t.teardown(() => { PerMessageDeflate.prototype.compressSync = original })
  const second = textOf(4096, 2)
  await t.rejects(conn.writeMessage(TextMessage, textOf(4096, 1)), { message: 'zlib broke' }, 'the write rejects with the error')
  await conn.writeMessage(TextMessage, second)
  const frame = await client.next()
  t.equal(frame?.rsv, 4, 'the next message goes out compressed')
  t.ok(inflateRawSync(frame!.payload, { finishFlush: constants.Z_SYNC_FLUSH }).equals(second), 'and inflates to the message')
})
