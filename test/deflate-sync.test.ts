import t from 'tap'
import { constants, createDeflateRaw, createInflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib'
import { PerMessageDeflate } from '../lib/deflate/codec.js'
import { negotiateCompression, resolveCompression } from '../lib/deflate/compression.js'
import { DEFAULT_SYNC_LIMIT } from '../lib/deflate/options.js'
import { ZlibContext, sharedContexts } from '../lib/deflate/zlib-context.js'
import { hasSyncEntry } from '../lib/deflate/zlib-sync.js'
import { ProtocolError, ReadLimitError, WriteClosedError } from '../lib/protocol/errors.js'
import { TAIL, agreed, compressPayload, pair, recorder, text } from './helpers/deflate.js'
import { prng, randomBytes } from './helpers/frames.js'

/** Inflates a whole sequence of payloads as one raw deflate stream with stock zlib. */
function stockInflate (payloads: Buffer[], windowBits = 15): Buffer {
  const stream = Buffer.concat(payloads.flatMap((payload) => [payload, TAIL]))
  return inflateRawSync(stream, { windowBits, finishFlush: constants.Z_SYNC_FLUSH })
}

/** Starts one inflation of `pieces` and ends it; the recorder tells what arrived, and when. */
function feed (codec: PerMessageDeflate, pieces: Buffer[], text = false): ReturnType<typeof recorder> {
  const record = recorder()
  const inflation = codec.inflateMessage(record, text)
  for (const piece of pieces) inflation.write(piece)
  inflation.end()
  return record
}

// The sync path drives undocumented internals of node:zlib: .ci/run runs this file on every Node
// major it supports, and this test fails (instead of the library silently falling back to the
// threadpool) when a version no longer has them.
t.test(`the synchronous zlib path is active on Node ${process.version}`, async (t) => {
  for (const stream of [createDeflateRaw(), createInflateRaw()]) {
    t.equal(hasSyncEntry(stream), true, `${stream.constructor.name} has the native writeSync and its state array`)
    const state = (stream as unknown as { _writeState: Uint32Array })._writeState
    t.equal(state.length, 2, 'the state holds avail_out and avail_in')
    stream.close()
  }
  const context = ZlibContext.inflate(15)
  t.equal(context.canProcessSync, true, 'the library decided for the sync path')
  context.close()
  const { server, client, close } = pair(agreed())
  const payload = server.compressSync(text(1000, 9))
  t.not(payload, undefined, 'a small message is compressed before compressSync returns')
  const record = feed(client, [payload!])
  t.equal(record.ended, true, 'and inflated before end() returns')
  t.ok(Buffer.concat(record.chunks).equals(text(1000, 9)))
  close()
})

t.test('compressSync output is the permessage-deflate stream stock zlib decodes', async (t) => {
  for (const windowBits of [9, 12, 15]) {
    const params = agreed({ serverMaxWindowBits: windowBits })
    const { server, client, close } = pair(params, { threshold: 0 })
    // zlib reaches back 250 bytes with a 9-bit window (512 less its lookahead): the repeat fits.
    const messages = [text(200, 1), text(200, 1), Buffer.alloc(0), text(1, 2), text(DEFAULT_SYNC_LIMIT, 3), text(300, 4)]
    const payloads = messages.map((message) => server.compressSync(message)!)
    t.ok(payloads.every((payload) => payload !== undefined), `every message up to the limit is compressed synchronously (window ${windowBits})`)
    t.same([...payloads[2]!], [0x00], 'an empty message is the single byte 0x00')
    t.ok(payloads[1]!.length < payloads[0]!.length / 4, 'context takeover: a repeated message refers back to the first')
    t.ok(stockInflate(payloads, windowBits).equals(Buffer.concat(messages)), 'stock zlib reads the messages as one stream')
    for (let i = 0; i < messages.length; i++) {
      const record = feed(client, [payloads[i]!], true)
      t.equal(record.ended, true, 'inflated before end() returned')
      if (!Buffer.concat(record.chunks).equals(messages[i]!)) t.fail(`message ${i} round trips`)
    }
    t.equal(server.compressSync(text(DEFAULT_SYNC_LIMIT + 1, 5)), undefined, 'a message over the limit is left to compress()')
    t.same(server.contexts, { compressor: true, decompressor: false })
    close()
  }

  const shared = pair(agreed({ serverNoContextTakeover: true }), { threshold: 0 })
  const message = text(2000, 6)
  const first = shared.server.compressSync(message)!
  const second = shared.server.compressSync(message)!
  t.ok(first.equals(second), 'without context takeover every message starts from scratch')
  t.ok(inflateRawSync(Buffer.concat([second, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH }).equals(message), 'each message decodes alone')
  t.equal(shared.server.contexts.compressor, false, 'the pooled context went back in the same call')
  t.ok(sharedContexts.size > 0, 'and waits in the pool')
  shared.close()

  const wide = new PerMessageDeflate(agreed(), true, { syncLimit: 64 * 1024 })
  const noise = randomBytes(prng(3), 40_000)
  const stored = wide.compressSync(noise)!
  t.ok(stored.length > 32 * 1024, 'incompressible output spans several output chunks')
  t.ok(inflateRawSync(Buffer.concat([stored, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH }).equals(noise))
  wide.close()

  const off = new PerMessageDeflate(agreed(), true, { syncLimit: 0 })
  t.equal(off.compressSync(text(10, 7)), undefined, 'syncLimit 0 turns the sync path off')
  t.equal(off.compressSync(Buffer.alloc(0)), undefined, 'even for an empty message')
  off.close()
})

t.test('sync and async compression interleave in call order over one history', async (t) => {
  const { server, client, close } = pair(agreed(), { syncLimit: 4096 })
  const messages: Buffer[] = []
  const payloads: Array<Buffer | Promise<Buffer>> = []
  const sync = (message: Buffer): void => {
    const payload = server.compressSync(message)
    t.not(payload, undefined, `${message.length} bytes compressed synchronously`)
    messages.push(message)
    payloads.push(payload!)
  }
  const async = (message: Buffer, reason: string): void => {
    t.equal(server.compressSync(message), undefined, reason)
    messages.push(message)
    payloads.push(server.compress(message))
  }
  sync(text(1000, 1))
  const large = text(20_000, 2)
  messages.push(large)
  payloads.push(server.compress(large))
  async(text(1000, 1), 'not while an earlier message is compressing')
  async(text(500, 3), 'nor behind one that waits')
  await Promise.all(payloads)
  sync(text(1000, 3))
  const writer = server.startCompress()
  const streamed = [text(3000, 4), text(3000, 5)]
  const streamedPayload = Promise.all([writer.write(streamed[0]!), writer.end(streamed[1])]).then(Buffer.concat)
  messages.push(Buffer.concat(streamed))
  payloads.push(streamedPayload)
  async(text(700, 6), 'not while a streaming message is open')
  await Promise.all(payloads)
  sync(Buffer.alloc(0))
  sync(text(1000, 6))
  const aborted = server.startCompress()
  aborted.abort()
  await new Promise((resolve) => setImmediate(resolve))
  sync(text(100, 7))

  const resolved = await Promise.all(payloads)
  t.ok(stockInflate(resolved).equals(Buffer.concat(messages)), 'stock zlib reads the mixed sequence as one stream')
  for (let i = 0; i < resolved.length; i++) {
    const inflated = await client.decompress(resolved[i]!)
    if (!inflated.equals(messages[i]!)) t.fail(`message ${i} decodes in order`)
  }
  close()
})

t.test('a history reset for a standalone message keeps its place among sync and async messages', async (t) => {
  const { server, client, close } = pair(agreed())
  const fresh = new PerMessageDeflate(agreed(), true)
  fresh.standaloneSent()
  t.ok(fresh.compressSync(text(100, 1)), 'a reset before any message is harmless')
  fresh.close()

  const standalone = compressPayload(text(400, 2))
  const first = server.compressSync(text(400, 2))!
  server.standaloneSent()
  const second = server.compressSync(text(400, 2))!
  t.ok(second.length > first.length / 2, 'no reference back past the reset')
  const pending = server.compress(text(400, 3))
  server.standaloneSent()
  t.equal(server.compressSync(text(400, 3)), undefined, 'a reset queued behind a running message blocks the sync path too')
  const third = await pending
  const fourth = await server.compress(text(400, 3))
  t.ok(server.compressSync(text(400, 3)), 'free again once the queue is empty')
  const closing = server.compress(Buffer.alloc(0))
  server.close()
  server.standaloneSent()
  await t.rejects(closing, WriteClosedError, 'a reset queued behind close finds no context to reset')
  const sequence = [first, standalone, second, third, standalone, fourth]
  const expected = [text(400, 2), text(400, 2), text(400, 2), text(400, 3), text(400, 2), text(400, 3)]
  for (let i = 0; i < sequence.length; i++) {
    t.ok((await client.decompress(sequence[i]!)).equals(expected[i]!), `message ${i}`)
  }
  close()
})

t.test('compressSync keeps the compressor state as compress does', async (t) => {
  const { server, client, close } = pair(agreed(), { idleTimeout: 1 })
  const sent: Array<{ payload: Buffer, data: Buffer }> = []
  const send = (data: Buffer): Buffer => {
    const payload = server.compressSync(data)!
    sent.push({ payload, data })
    return payload
  }
  const data = text(2000, 1)
  const first = send(data)
  send(data)
  t.equal(server.contexts.compressor, true)
  for (let i = 0; i < 100 && server.contexts.compressor; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(server.contexts.compressor, false, 'the idle timer frees the context after sync messages too')
  t.ok(send(data).equals(first), 'the next message starts fresh')
  server.setLevel(9)
  send(text(4000, 2))

  // A zlib failure (never seen with valid settings) is simulated: the context is dropped.
  const original = Object.getOwnPropertyDescriptor(ZlibContext.prototype, 'processSync')!
  ZlibContext.prototype.processSync = () => { throw new Error('simulated zlib failure') }
  t.throws(() => server.compressSync(data), { message: 'simulated zlib failure' })
  Object.defineProperty(ZlibContext.prototype, 'processSync', original)
  t.equal(server.contexts.compressor, false, 'the failed context is dropped')
  send(data)
  for (const [i, { payload, data }] of sent.entries()) {
    t.ok((await client.decompress(payload)).equals(data), `message ${i} decodes over the peer's history`)
  }

  server.close()
  t.equal(server.compressSync(data), undefined, 'a closed compressor leaves it to compress(), which rejects')
  close()
})

t.test('small pieces are inflated before write and end return', async (t) => {
  for (const noContextTakeover of [false, true]) {
    const { server, client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    const data = text(6000, 1)
    const payload = (await server.compress(data))
    const record = recorder()
    const inflation = client.inflateMessage(record, true)
    for (let at = 0; at < payload.length; at += 100) {
      inflation.write(payload.subarray(at, at + 100))
      t.equal(record.consumed, Math.min(at + 100, payload.length), 'each piece is consumed at once')
    }
    t.equal(record.ended, false)
    inflation.end()
    t.equal(record.ended, true, `ended synchronously, noContextTakeover=${noContextTakeover}`)
    t.ok(Buffer.concat(record.chunks).equals(data))
    t.equal(client.contexts.decompressor, !noContextTakeover, 'a pooled context went back at the end')
    const empty = feed(client, [])
    t.equal(empty.ended, true, 'a message without payload ends synchronously too')
    close()
  }
})

t.test('a piece waits for everything before it, and the queue runs on afterwards', async (t) => {
  const { server, client, close } = pair(agreed(), { syncLimit: 1024 })
  const big = text(200_000, 1)
  const small = text(500, 2)
  const bigPayload = await server.compress(big)
  const smallPayload = await server.compress(small)
  t.ok(bigPayload.length > 1024, 'the first message goes to the threadpool')
  const order: string[] = []
  const a = recorder()
  const b = recorder()
  const inflateA = client.inflateMessage({ ...a, onEnd: () => { order.push('a'); a.onEnd() } })
  const inflateB = client.inflateMessage({ ...b, onEnd: () => { order.push('b'); b.onEnd() } })
  inflateA.write(bigPayload)
  inflateB.write(smallPayload)
  inflateB.end()
  t.equal(b.ended, false, 'the small message behind it does not jump the queue')
  inflateA.end()
  await b.done
  t.same(order, ['a', 'b'])
  t.ok(Buffer.concat(a.chunks).equals(big))
  t.ok(Buffer.concat(b.chunks).equals(small))

  // A message created while the one before it still takes frames is fed once that one ends.
  const c = recorder()
  const d = recorder()
  const first = text(800, 3)
  const second = text(900, 4)
  const firstPayload = await server.compress(first)
  const secondPayload = await server.compress(second)
  const inflateC = client.inflateMessage(c)
  const inflateD = client.inflateMessage(d)
  inflateD.write(secondPayload)
  inflateD.end()
  inflateC.write(firstPayload)
  inflateC.end()
  t.equal(c.ended, true, 'the head message went synchronously')
  await d.done
  t.ok(Buffer.concat(d.chunks).equals(second), 'the queued one ran after it, over the same history')
  close()
})

t.test('a piece that inflates past the sync bound goes on on the threadpool', async (t) => {
  const data = Buffer.concat([Buffer.alloc(300_000), text(5000, 1), Buffer.alloc(100_000, 0x61)])
  const { server, client, close } = pair(agreed(), { syncLimit: 256 })
  const payload = await server.compress(data)
  const record = recorder()
  const inflation = client.inflateMessage(record)
  const pieces: Buffer[] = []
  for (let at = 0; at < payload.length; at += 256) pieces.push(payload.subarray(at, at + 256))
  for (const piece of pieces) inflation.write(piece)
  const early = Buffer.concat(record.chunks).length
  t.ok(early > 0 && early < data.length, `a first part came synchronously (${early} bytes), the rest is queued`)
  inflation.end()
  t.equal(record.ended, false)
  await record.done
  t.equal(record.error, undefined)
  t.ok(Buffer.concat(record.chunks).equals(data), 'all of it, in order')
  t.equal(record.consumed, payload.length, 'every compressed byte reported consumed once')
  const again = await client.decompress(await server.compress(data))
  t.ok(again.equals(data), 'the same without onConsumed, and the history is intact')
  close()
})

t.test('a bomb stops at the read limit on the sync path too', async (t) => {
  const READ_LIMIT = 1024 * 1024
  const bomb = deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { level: 1, strategy: constants.Z_RLE, finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4)
  t.ok(bomb.length < 128 * 1024, `64 MiB of zeros is ${bomb.length} bytes compressed`)
  for (const noContextTakeover of [false, true]) {
    const params = agreed({ clientNoContextTakeover: noContextTakeover })
    // The sync bound (8 x syncLimit) is above the read limit: only the limit stops the job.
    const codec = new PerMessageDeflate(params, true, { readLimit: () => READ_LIMIT, syncLimit: 256 * 1024 })
    const before = process.memoryUsage().arrayBuffers
    let delivered = 0
    const record = recorder()
    const inflation = codec.inflateMessage({ ...record, onData: (chunk) => { delivered += chunk.length } })
    inflation.write(bomb)
    t.type(record.error, ReadLimitError, 'fails before write() returns')
    t.equal(record.error?.closeCode, 1009)
    t.equal(record.error?.code, 'ERR_WS_READ_LIMIT')
    const growth = process.memoryUsage().arrayBuffers - before
    t.ok(delivered <= READ_LIMIT && delivered > READ_LIMIT - 16 * 1024, `delivered ${delivered} bytes, about the limit`)
    t.ok(growth < 4 * READ_LIMIT, `buffers grew by ${growth} bytes, nowhere near 64 MiB`)
    t.equal(record.consumed, 0, 'the failed piece is not reported consumed')
    t.same(codec.contexts, { compressor: false, decompressor: false }, 'the context that hit the limit is freed')
    inflation.end()
    const later = feed(codec, [Buffer.from([0x00])])
    t.equal(later.error, record.error, 'later messages fail the same way')
    codec.close()
  }

  // With the default bound the frames go partly sync, partly to the threadpool: same outcome.
  const codec = new PerMessageDeflate(agreed(), true, { readLimit: () => READ_LIMIT })
  let delivered = 0
  const record = recorder()
  const inflation = codec.inflateMessage({ ...record, onData: (chunk) => { delivered += chunk.length } })
  for (let at = 0; at < bomb.length; at += 8192) inflation.write(bomb.subarray(at, at + 8192))
  inflation.end()
  await record.done
  t.type(record.error, ReadLimitError)
  t.ok(delivered <= READ_LIMIT, `delivered ${delivered} bytes`)
  codec.close()
})

t.test('corrupt data fails with 1007 as on the threadpool, and so does every later message', async (t) => {
  const corrupt = Buffer.from([0xff, 0xff, 0xff, 0xff])
  const good = compressPayload(text(1000, 1))
  const async = new PerMessageDeflate(agreed(), true, { syncLimit: 0 })
  const expected = feed(async, [good, corrupt])
  await expected.done
  async.close()
  for (const noContextTakeover of [false, true]) {
    const { client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    const bad = recorder()
    const inflation = client.inflateMessage(bad)
    const waiting = recorder()
    client.inflateMessage(waiting)
    inflation.write(good)
    t.equal(bad.error, undefined)
    inflation.write(corrupt)
    t.type(bad.error, ProtocolError, 'fails before write() returns')
    t.equal(bad.error?.closeCode, 1007)
    t.equal(bad.error?.code, 'ERR_WS_INVALID_COMPRESSED_DATA')
    t.equal(bad.error?.message, expected.error?.message, 'the same error as the threadpool path')
    t.match(bad.error?.message, /invalid compressed data: /)
    t.equal(waiting.error, bad.error, 'the message waiting behind it fails at once')
    t.same(client.contexts, { compressor: false, decompressor: false }, 'the broken context is gone')
    t.equal(feed(client, [good]).error, bad.error, 'a message started later fails too')
    close()
  }
})

t.test('text messages are checked for UTF-8 on the sync path', async (t) => {
  const { server, client, close } = pair(agreed({ serverNoContextTakeover: true }))
  const invalid = await server.compress(Buffer.from([0x68, 0xff, 0x68]))
  t.equal(feed(client, [invalid]).error, undefined, 'binary is not checked')
  const record = feed(client, [invalid], true)
  t.match(record.error, { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8', message: /invalid UTF-8/ })
  close()
  const second = pair(agreed({ serverNoContextTakeover: true }))
  const truncated = await second.server.compress(Buffer.from([0x68, 0xe2, 0x98]))
  t.match(feed(second.client, [truncated], true).error, { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8', message: /ends inside a UTF-8 character/ })
  second.close()
})

t.test('a peer that ends its messages with a final block (BFINAL) is understood on the sync path', async (t) => {
  for (const noContextTakeover of [false, true]) {
    const { client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    for (const word of ['one', 'two', 'three']) {
      const record = feed(client, [deflateRawSync(Buffer.from(word.repeat(20)))])
      t.equal(record.ended, true)
      t.equal(Buffer.concat(record.chunks).toString(), word.repeat(20))
    }
    t.equal(client.contexts.decompressor, false, 'a finished context is replaced for the next message')
    close()
  }
})

t.test('callbacks may close the codec or start messages while a sync step runs', async (t) => {
  const { server, client, close } = pair(agreed(), { syncLimit: 64 * 1024 })
  const payload = await server.compress(text(1000, 1))
  const closing = recorder()
  const inflation = client.inflateMessage({ ...closing, onEnd: () => { client.close(); closing.onEnd() } })
  inflation.write(payload)
  inflation.end()
  t.equal(closing.ended, true)
  t.equal(client.contexts.decompressor, false, 'closed from inside onEnd')

  const big = text(100_000, 2)
  const bigPayload = deflateRawSync(big, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4)
  t.ok(bigPayload.length < 64 * 1024 && big.length > 16 * 1024, 'one sync piece, several output chunks')
  for (const noContextTakeover of [false, true]) {
    const other = new PerMessageDeflate(agreed({ serverNoContextTakeover: noContextTakeover }), false, { syncLimit: 64 * 1024 })
    const cut = recorder()
    const cutInflation = other.inflateMessage({ ...cut, onData: (chunk) => { cut.onData(chunk); other.close() } })
    cutInflation.write(bigPayload)
    cutInflation.end()
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(cut.chunks.length, 1, `closed from inside onData: the job stops at once (noContextTakeover=${noContextTakeover})`)
    t.equal(cut.ended || cut.error !== undefined, false, 'and the message is dropped silently')
  }

  const third = new PerMessageDeflate(agreed(), false)
  const second = text(300, 3)
  const firstPayload = deflateRawSync(text(300, 4), { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4)
  const secondPayload = deflateRawSync(second, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4)
  const next = recorder()
  const starting = recorder()
  const first = third.inflateMessage({
    ...starting,
    onEnd: () => {
      starting.onEnd()
      // Started from inside a sync step: it must queue, then run once the step is over.
      const started = third.inflateMessage(next)
      started.write(secondPayload)
      started.end()
    }
  })
  first.write(firstPayload)
  first.end()
  t.equal(starting.ended, true)
  await next.done
  t.ok(Buffer.concat(next.chunks).equals(second))
  third.close()
  close()
})

t.test('ZlibContext.processSync', async (t) => {
  const context = ZlibContext.deflate({ level: 3, memLevel: 4, windowBits: 15 })
  t.equal(context.canProcessSync, true, 'this runtime has the sync entry')
  t.throws(() => context.processSync(Buffer.from('x'), () => { throw new Error('sink failed') }), { message: 'sink failed' })
  t.equal(context.broken, true, 'a sink that throws breaks the context')
  t.throws(() => context.processSync(Buffer.from('x'), () => {}), { message: 'zlib context closed' })
  context.close()

  t.equal(hasSyncEntry({}), false)
  t.equal(hasSyncEntry({ _handle: null }), false)
  t.equal(hasSyncEntry({ _handle: { writeSync: () => {} } }), false, 'the state array is needed too')
  t.equal(hasSyncEntry({ _handle: { writeSync: () => {} }, _writeState: new Uint32Array(2) }), true)
})

t.test('syncLimit is checked and handed from the compression setting to the codec', async (t) => {
  t.throws(() => new PerMessageDeflate(agreed(), true, { syncLimit: -1 }), RangeError)
  t.throws(() => new PerMessageDeflate(agreed(), true, { syncLimit: 1.5 }), RangeError)
  t.throws(() => resolveCompression({ syncLimit: -1 }), RangeError)
  t.same(resolveCompression({ syncLimit: 0 }), { syncLimit: 0 })
  const negotiated = negotiateCompression({ 'sec-websocket-extensions': 'permessage-deflate' }, { syncLimit: 100 })
  t.equal(negotiated?.compression.options.syncLimit, 100)
})
