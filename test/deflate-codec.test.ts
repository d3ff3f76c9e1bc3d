import t from 'tap'
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib'
import { PerMessageDeflate, compressStandalone } from '../lib/deflate/codec.js'
import { ProtocolError, ReadLimitError, WriteClosedError } from '../lib/protocol/errors.js'
import { TAIL, agreed, pair, recorder, text } from './helpers/deflate.js'

t.test('round trips at every size, window and context mode, in both directions', async (t) => {
  const sizes = [0, 1, 1023, 1024, 64 * 1024, 1024 * 1024]
  for (const noContextTakeover of [false, true]) {
    for (let bits = 8; bits <= 15; bits++) {
      const params = agreed({
        serverNoContextTakeover: noContextTakeover,
        clientNoContextTakeover: noContextTakeover,
        serverMaxWindowBits: bits,
        clientMaxWindowBits: bits
      })
      const { server, client, close } = pair(params, { threshold: 0 })
      for (const [sender, receiver] of [[server, client], [client, server]] as const) {
        // Two rounds: the second messages reuse (or must not reuse) the first ones' history.
        const sent: Buffer[] = []
        for (const round of [1, 2]) {
          for (const size of sizes) {
            const data = text(size, size + round)
            const compressed = await sender.compress(data)
            sent.push(compressed)
            const inflated = await receiver.decompress(compressed, true)
            if (!inflated.equals(data)) t.fail(`bits=${bits} noContext=${noContextTakeover} size=${size} round=${round}`)
            if (size === 1024 * 1024 && compressed.length * 2 > size) t.fail(`1 MiB of text did not shrink: ${compressed.length}`)
          }
        }
        // An independent inflater reads the same bytes: the whole exchange is one raw deflate stream.
        const stream = Buffer.concat(sent.flatMap((message) => [message, TAIL]))
        const expected = Buffer.concat([1, 2].flatMap((round) => sizes.map((size) => text(size, size + round))))
        t.ok(inflateRawSync(stream, { windowBits: Math.max(9, bits), finishFlush: constants.Z_SYNC_FLUSH }).equals(expected), `zlib oracle, bits=${bits} noContext=${noContextTakeover} ${sender.isServer ? 'server' : 'client'} sends`)
      }
      close()
    }
  }
})

t.test('context takeover shrinks repeated messages, no context takeover does not', async (t) => {
  const message = text(300, 7)
  const withContext = pair(agreed())
  const withoutContext = pair(agreed({ serverNoContextTakeover: true, clientNoContextTakeover: true }))
  const first = await withContext.server.compress(message)
  const second = await withContext.server.compress(message)
  t.ok(second.length < first.length / 4, `${second.length} < ${first.length} / 4`)
  const a = await withoutContext.server.compress(message)
  const b = await withoutContext.server.compress(message)
  t.ok(a.equals(b), 'each message compressed from scratch gives the same bytes')
  t.same(withContext.server.contexts, { compressor: true, decompressor: false })
  t.same(withoutContext.server.contexts, { compressor: false, decompressor: false }, 'borrowed contexts are not owned')
  withContext.close()
  withoutContext.close()
})

t.test('an empty message compresses to the single byte 0x00 (RFC 7692 §7.2.3.6)', async (t) => {
  const { server, client, close } = pair(agreed())
  const empty = await server.compress(Buffer.alloc(0))
  t.same([...empty], [0x00])
  t.equal((await client.decompress(empty)).length, 0)
  t.equal((await client.decompress(Buffer.alloc(0))).length, 0, 'no payload at all inflates to nothing too')
  close()
})

t.test('streaming compression and piecewise inflation', async (t) => {
  for (const noContextTakeover of [false, true]) {
    const { server, client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    for (let round = 0; round < 3; round++) {
      const data = text(200_000, round)
      const deflation = server.startCompress()
      const pieces: Buffer[] = []
      for (let at = 0; at < data.length; at += 50_000) pieces.push(await deflation.write(data.subarray(at, at + 50_000)))
      pieces.push(await deflation.end())
      const compressed = Buffer.concat(pieces)
      const record = recorder()
      const inflation = client.inflateMessage(record, true)
      for (let at = 0; at < compressed.length; at += 777) inflation.write(compressed.subarray(at, at + 777))
      inflation.end()
      await record.done
      t.equal(record.error, undefined)
      t.ok(Buffer.concat(record.chunks).equals(data), `round ${round}, noContextTakeover=${noContextTakeover}`)
      t.equal(record.consumed, compressed.length, 'every compressed byte is reported consumed')
      t.ok(record.chunks.every((chunk) => chunk.length > 0), 'no empty chunks')
    }
    const deflation = server.startCompress()
    const last = await deflation.end(Buffer.from('done'))
    t.equal((await client.decompress(last)).toString(), 'done')
    await t.rejects(deflation.end(), WriteClosedError, 'end twice')
    await t.rejects(deflation.write(Buffer.from('x')), WriteClosedError, 'write after end')
    close()
  }
})

t.test('messages are inflated in order, each waiting for the one before', async (t) => {
  const { server, client, close } = pair(agreed())
  const first = await server.compress(Buffer.from('first message'))
  const second = await server.compress(Buffer.from('second message'))
  const a = recorder()
  const b = recorder()
  const inflateA = client.inflateMessage(a)
  const inflateB = client.inflateMessage(b)
  inflateB.write(second)
  inflateB.end()
  inflateA.write(first.subarray(0, 3))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(b.ended, false, 'the second message waits for the end of the first')
  inflateA.write(first.subarray(3))
  inflateA.end()
  await b.done
  t.equal(Buffer.concat(a.chunks).toString(), 'first message')
  t.equal(Buffer.concat(b.chunks).toString(), 'second message')
  close()
})

t.test('an aborted message leaves no trace in the history', async (t) => {
  const { server, client, close } = pair(agreed())
  t.equal((await client.decompress(await server.compress(text(5000, 1)))).length, 5000)
  const abandoned = server.startCompress()
  await abandoned.write(text(5000, 2))
  abandoned.abort()
  abandoned.abort()
  await t.rejects(abandoned.write(Buffer.from('x')), WriteClosedError)
  await t.rejects(abandoned.end(), WriteClosedError)
  const next = text(5000, 3)
  t.ok((await client.decompress(await server.compress(next))).equals(next), 'the next message decodes against the peer\'s history')
  const unstarted = server.startCompress()
  unstarted.abort()
  t.ok((await client.decompress(await server.compress(next))).equals(next))
  close()
})

t.test('corrupt compressed data fails with 1007, and so does every later message', async (t) => {
  for (const noContextTakeover of [false, true]) {
    const { client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    const bad = recorder()
    const later = recorder()
    const inflation = client.inflateMessage(bad)
    client.inflateMessage(later).end()
    inflation.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))
    inflation.end()
    await later.done
    t.type(bad.error, ProtocolError)
    t.equal(bad.error?.closeCode, 1007)
    t.equal(bad.error?.code, 'ERR_WS_INVALID_COMPRESSED_DATA')
    t.match(bad.error?.message, /invalid compressed data/)
    t.equal(later.error, bad.error, 'the same error for the next message')
    t.same(client.contexts, { compressor: false, decompressor: false }, 'the broken context is gone')
    const afterwards = recorder()
    client.inflateMessage(afterwards).end()
    await afterwards.done
    t.equal(afterwards.error, bad.error)
    close()
  }
})

t.test('text messages are checked for UTF-8 after inflation', async (t) => {
  const { server, client, close } = pair(agreed({ serverNoContextTakeover: true }))
  const valid = Buffer.from('h\u00e9llo \u2603 \u{1f600}')
  t.ok((await client.decompress(await server.compress(valid), true)).equals(valid))
  const invalid = await server.compress(Buffer.from([0x68, 0xff, 0x68]))
  t.ok((await client.decompress(invalid)).equals(Buffer.from([0x68, 0xff, 0x68])), 'binary is not checked')
  await t.rejects(client.decompress(invalid, true), { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8', message: /invalid UTF-8/ })
  close()
  const second = pair(agreed({ serverNoContextTakeover: true }))
  const truncated = await second.server.compress(Buffer.from([0x68, 0xe2, 0x98]))
  await t.rejects(second.client.decompress(truncated, true), { closeCode: 1007, code: 'ERR_WS_INVALID_UTF8', message: /ends inside a UTF-8 character/ })
  second.close()
})

t.test('a peer that ends its messages with a final block (BFINAL) is still understood', async (t) => {
  for (const noContextTakeover of [false, true]) {
    const { client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    for (const word of ['one', 'two', 'three']) {
      const finalBlock = deflateRawSync(Buffer.from(word.repeat(20)))
      t.equal((await client.decompress(finalBlock)).toString(), word.repeat(20))
    }
    t.equal(client.contexts.decompressor, false, 'a finished context is replaced for the next message')
    close()
  }
})

t.test('the read limit bounds inflated output', async (t) => {
  const data = text(10_000, 3)
  let limit = data.length
  const { server, client, close } = pair(agreed(), { readLimit: () => limit })
  t.ok((await client.decompress(await server.compress(data))).equals(data), 'exactly at the limit')
  limit = data.length - 1
  const error = await client.decompress(await server.compress(data)).catch((error: unknown) => error)
  t.type(error, ReadLimitError)
  t.equal((error as ReadLimitError).closeCode, 1009)
  t.equal((error as ReadLimitError).code, 'ERR_WS_READ_LIMIT')
  close()
})

t.test('compression level', async (t) => {
  const { server, client, close } = pair(agreed(), { level: 1 })
  t.equal(server.level, 1)
  const data = text(100_000, 9)
  const fast = await server.compress(data)
  server.setLevel(9)
  t.equal(server.level, 9)
  const best = await server.compress(data)
  t.ok(best.length <= fast.length, 'a higher level does not compress worse')
  t.ok((await client.decompress(fast)).equals(data))
  t.ok((await client.decompress(best)).equals(data), 'the history restarts cleanly at the new level')
  t.throws(() => { server.setLevel(10) }, RangeError)
  t.throws(() => new PerMessageDeflate(agreed(), true, { memLevel: 0 }), RangeError)
  t.throws(() => new PerMessageDeflate(agreed(), true, { threshold: -1 }), RangeError)
  t.throws(() => new PerMessageDeflate(agreed(), true, { idleTimeout: 1.5 }), RangeError)
  const shared = pair(agreed({ serverNoContextTakeover: true }), { level: 0 })
  const stored = await shared.server.compress(data)
  t.ok(stored.length > data.length, 'level 0 stores')
  shared.server.setLevel(6)
  t.ok((await shared.server.compress(data)).length < data.length / 2)
  shared.close()
  close()
})

t.test('threshold and window getters', async (t) => {
  const withContext = new PerMessageDeflate(agreed({ serverMaxWindowBits: 8, clientMaxWindowBits: 12 }), true)
  t.equal(withContext.threshold, 32)
  t.equal(withContext.shouldCompress(31), false)
  t.equal(withContext.shouldCompress(32), true)
  t.equal(withContext.sendWindowBits, 9, '8 is used as 9')
  t.equal(withContext.receiveWindowBits, 12)
  t.equal(withContext.sendNoContextTakeover, false)
  t.equal(withContext.receiveNoContextTakeover, false)
  const withoutContext = new PerMessageDeflate(agreed({ clientNoContextTakeover: true }), false)
  t.equal(withoutContext.threshold, 1024)
  t.equal(withoutContext.sendNoContextTakeover, true)
  t.equal(withoutContext.receiveNoContextTakeover, false)
  const chosen = new PerMessageDeflate(agreed(), false, { threshold: 0 })
  t.equal(chosen.shouldCompress(0), true)
  chosen.threshold = 100
  t.equal(chosen.shouldCompress(99), false)
  for (const codec of [withContext, withoutContext, chosen]) codec.close()
})

t.test('an idle compressor with context takeover is freed, and the next message starts fresh', async (t) => {
  const { server, client, close } = pair(agreed(), { idleTimeout: 1 })
  const data = text(2000, 5)
  const first = await server.compress(data)
  t.equal(server.contexts.compressor, true)
  for (let i = 0; i < 100 && server.contexts.compressor; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(server.contexts.compressor, false, 'freed after the idle timeout')
  const again = await server.compress(data)
  t.ok(again.equals(first), 'compressed without history, like the first message')
  t.ok((await client.decompress(first)).equals(data))
  t.ok((await client.decompress(again)).equals(data), 'the peer keeps its window and still decodes')
  close()
  const keep = pair(agreed(), { idleTimeout: 0 })
  await keep.server.compress(data)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(keep.server.contexts.compressor, true, 'idleTimeout 0 keeps the context')
  keep.close()
  t.equal(keep.server.contexts.compressor, false, 'close frees it')
})

t.test('standalone compression can be sent on any connection whose window fits', async (t) => {
  const message = text(5000, 11)
  const standalone = await compressStandalone(message, { windowBits: 10 })
  t.ok(inflateRawSync(Buffer.concat([standalone, TAIL]), { windowBits: 10, finishFlush: constants.Z_SYNC_FLUSH }).equals(message))
  t.ok((await compressStandalone(message)).length < standalone.length, 'a bigger window compresses better')
  t.same([...await compressStandalone(Buffer.alloc(0), { level: 9, memLevel: 9, windowBits: 8 })], [0x00])
  t.throws(() => compressStandalone(message, { windowBits: 16 }), RangeError)

  const narrow = new PerMessageDeflate(agreed({ serverMaxWindowBits: 9 }), true)
  t.equal(narrow.canSendStandalone(10), false)
  t.equal(narrow.canSendStandalone(8), true)
  narrow.close()

  for (const noContextTakeover of [false, true]) {
    const { server, client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    t.equal(server.canSendStandalone(10), true)
    const before = text(5000, 12)
    const after = Buffer.concat([before, message])
    // The server's own history holds `before`; the client's window also gets the standalone message.
    const sequence = [
      await server.compress(before),
      standalone,
      (server.standaloneSent(), await server.compress(after)),
      await server.compress(after)
    ]
    const expected = [before, message, after, after]
    for (let i = 0; i < sequence.length; i++) {
      t.ok((await client.decompress(sequence[i]!)).equals(expected[i]!), `message ${i}, noContextTakeover=${noContextTakeover}`)
    }
    close()
  }
})

t.test('close frees everything and stops work', async (t) => {
  const { server, client } = pair(agreed())
  const big = text(4 * 1024 * 1024, 13)
  const pending = server.compress(big)
  const queued = server.compress(Buffer.from('after'))
  await new Promise((resolve) => setImmediate(resolve))
  server.close()
  await t.rejects(pending, 'the running compression rejects')
  await t.rejects(queued, WriteClosedError)
  await t.rejects(server.compress(Buffer.from('x')), WriteClosedError)
  t.same(server.contexts, { compressor: false, decompressor: false })

  const other = new PerMessageDeflate(agreed(), true)
  const streaming = other.startCompress()
  const firstWrite = streaming.write(Buffer.from('one'))
  const secondWrite = streaming.write(Buffer.from('two'))
  other.close()
  await t.rejects(firstWrite, { message: /compressor closed/ })
  await t.rejects(secondWrite, { message: /message compression was aborted/ }, 'a step queued behind a failed one fails too')

  const compressed = await compressStandalone(big)
  const running = recorder()
  const waiting = recorder()
  const inflation = client.inflateMessage(running)
  client.inflateMessage(waiting).end()
  inflation.write(compressed)
  inflation.end()
  await new Promise((resolve) => setImmediate(resolve))
  client.close()
  const late = recorder()
  client.inflateMessage(late).end()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(running.ended || running.error !== undefined, false, 'the running message is dropped silently')
  t.equal(waiting.ended || waiting.error !== undefined, false, 'so is the queued one')
  t.equal(late.ended || late.error !== undefined, false, 'and one started after close')
  t.same(client.contexts, { compressor: false, decompressor: false })

  const shared = pair(agreed({ serverNoContextTakeover: true, clientNoContextTakeover: true }))
  const sharedPending = shared.server.compress(big)
  const sharedInflation = shared.client.inflateMessage(recorder())
  sharedInflation.write(compressed.subarray(0, 1000))
  await new Promise((resolve) => setImmediate(resolve))
  shared.close()
  t.ok((await sharedPending).length > 0, 'a job on a borrowed context finishes, then the context is closed')
})

t.test('the output is raw deflate a stock inflater reads with the negotiated window', async (t) => {
  const data = text(50_000, 17)
  const { server, close } = pair(agreed({ serverMaxWindowBits: 10 }))
  const compressed = await server.compress(data)
  t.ok(inflateRawSync(Buffer.concat([compressed, TAIL]), { windowBits: 10, finishFlush: constants.Z_SYNC_FLUSH }).equals(data))
  close()
})
