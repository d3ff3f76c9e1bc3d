// A peer that abuses permessage-deflate, over real TCP from a raw client: inflation bombs stop at
// the read limit (1009) without the inflated bytes ever being delivered, corrupt data and invalid
// UTF-8 fail with 1007, RSV1 where it does not belong fails with 1002.
import t from 'tap'
import { constants, deflateRawSync } from 'node:zlib'
import type { Conn, Message } from '../lib/conn/conn.js'
import { Upgrader, type UpgraderOptions } from '../lib/upgrader.js'
import { compressPayload } from './helpers/deflate.js'
import { UpgradeServer } from './helpers/compression-peers.js'
import { WireClient, type FrameSpec } from './helpers/wire-client.js'

const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate\r\n'
const MiB = 1024 * 1024
const HISTORY = Buffer.from('a message the server never received, repeated: a message the server never received')

/** What the server side saw: the settled outcome of each read the handler made. */
interface Served {
  conn: Conn
  reads: Array<Message | Error>
  /** Bytes a streaming reader got before the failure. */
  streamed: number
  done: Promise<void>
}

/**
 * A server whose handler reads until its connection fails; with `stream` it reads through
 * nextReader and counts the bytes it is handed.
 */
async function serve (t: { teardown: (fn: () => unknown) => void }, options: UpgraderOptions, stream = false): Promise<{ port: number, next: () => Promise<Served> }> {
  const server = await UpgradeServer.start()
  const upgrader = new Upgrader(options)
  const served: Array<Promise<Served>> = []
  server.route('/', (req, socket, head) => {
    served.push(upgrader.upgrade(req, socket, head).then((conn) => {
      const record: Served = { conn, reads: [], streamed: 0, done: Promise.resolve() }
      record.done = (async () => {
        for (;;) {
          try {
            if (stream) {
              const reader = await conn.nextReader()
              for await (const piece of reader) record.streamed += piece.length
            } else {
              record.reads.push(await conn.readMessage())
            }
          } catch (error) {
            record.reads.push(error as Error)
            return
          }
        }
      })()
      return record
    }))
  })
  t.teardown(async () => {
    for (const record of await Promise.all(served)) record.conn.terminate()
    await server.close()
  })
  let taken = 0
  return {
    port: server.port,
    next: async () => {
      while (served.length <= taken) await new Promise((resolve) => setImmediate(resolve))
      return await served[taken++]!
    }
  }
}

/** Waits for the server's close frame and returns its code. */
async function closeCode (client: WireClient): Promise<number | undefined> {
  for (;;) {
    const frame = await client.next()
    if (frame === null) return undefined
    if (frame.opcode === 8) return frame.payload.readUInt16BE(0)
  }
}

t.test('a 64 MiB bomb in one small frame closes with 1009 at a 1 MiB read limit', async (t) => {
  const bomb = compressPayload(Buffer.alloc(64 * MiB))
  t.ok(bomb.length < 128 * 1024, `the bomb is ${bomb.length} bytes on the wire`)
  for (const stream of [false, true]) {
    const { port, next } = await serve(t, { compression: true, readLimit: MiB }, stream)
    const client = await WireClient.open(port, '/', OFFER)
    const served = await next()
    const baseline = process.memoryUsage().arrayBuffers
    let peak = baseline
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().arrayBuffers) }, 1)
    client.send({ opcode: 2, rsv: 4, payload: bomb })
    t.equal(await closeCode(client), 1009, `closed with 1009 (${stream ? 'streaming reader' : 'readMessage'})`)
    await served.done
    clearInterval(sampler)
    t.match(served.reads.at(-1), { closeCode: 1009, code: 'ERR_WS_READ_LIMIT' }, 'the read failed with the read-limit error')
    t.equal(served.reads.length, 1, 'no message was delivered')
    if (stream) t.ok(served.streamed <= MiB + 64 * 1024, `the streaming reader got at most the limit and one zlib chunk (${served.streamed} bytes)`)
    t.ok(peak - baseline < 24 * MiB, `buffer memory grew by ${((peak - baseline) / MiB).toFixed(1)} MiB at most, not 64`)
    await client.closedByServer()
  }
})

t.test('a bomb spread over many frames, and one after a good message', async (t) => {
  const { port, next } = await serve(t, { compression: true, readLimit: MiB })
  const client = await WireClient.open(port, '/', OFFER)
  const served = await next()
  const good = Buffer.from('{"hello":"world"}')
  const bomb = compressPayload(Buffer.alloc(8 * MiB))
  const frames: FrameSpec[] = [{ opcode: 1, rsv: 4, payload: compressPayload(good) }]
  const pieces = 16
  const step = Math.ceil(bomb.length / pieces)
  for (let i = 0; i < pieces; i++) {
    frames.push({ opcode: i === 0 ? 2 : 0, rsv: i === 0 ? 4 : 0, fin: i === pieces - 1, payload: bomb.subarray(i * step, (i + 1) * step) })
  }
  client.send(...frames)
  t.equal(await closeCode(client), 1009, 'closed with 1009')
  await served.done
  t.same((served.reads[0] as Message).data, good, 'the good message before it was delivered')
  t.match(served.reads[1], { closeCode: 1009, code: 'ERR_WS_READ_LIMIT' }, 'then the read failed with 1009')
  t.equal(served.reads.length, 2, 'and nothing else')
})

t.test('corrupt compressed data and invalid UTF-8 after inflation fail with 1007', async (t) => {
  const cases: Array<[string, FrameSpec[], string]> = [
    ['an invalid block type', [{ opcode: 2, rsv: 4, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]) }], 'ERR_WS_INVALID_COMPRESSED_DATA'],
    // Compressed against a history (a preset dictionary) this connection never had.
    ['a reference to history that was never sent', [{ opcode: 2, rsv: 4, payload: deflateRawSync(HISTORY, { dictionary: HISTORY, finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4) }], 'ERR_WS_INVALID_COMPRESSED_DATA'],
    ['invalid UTF-8 in a compressed text message', [{ opcode: 1, rsv: 4, payload: compressPayload(Buffer.from([0x68, 0x69, 0xc3, 0x28])) }], 'ERR_WS_INVALID_UTF8'],
    ['a compressed text message ending inside a character', [{ opcode: 1, rsv: 4, payload: compressPayload(Buffer.from([0x68, 0x69, 0xe2, 0x82])) }], 'ERR_WS_INVALID_UTF8']
  ]
  for (const [name, frames, code] of cases) {
    const { port, next } = await serve(t, { compression: true })
    const client = await WireClient.open(port, '/', OFFER)
    const served = await next()
    client.send(...frames)
    t.equal(await closeCode(client), 1007, `${name}: closed with 1007`)
    await served.done
    t.match(served.reads[0], { closeCode: 1007, code }, `${name}: the read failed with 1007 and ${code}`)
  }
})

t.test('RSV1 where it does not belong fails with 1002', async (t) => {
  const piece = compressPayload(Buffer.from('hello hello hello'))
  const cases: Array<[string, string, FrameSpec[], string]> = [
    ['on a continuation frame', OFFER, [
      { opcode: 1, rsv: 4, fin: false, payload: piece.subarray(0, 4) },
      { opcode: 0, rsv: 4, payload: piece.subarray(4) }
    ], 'ERR_WS_UNEXPECTED_RSV1'],
    ['on a ping', OFFER, [{ opcode: 9, rsv: 4, payload: 'x' }], 'ERR_WS_UNEXPECTED_RSV1'],
    ['on a close frame', OFFER, [{ opcode: 8, rsv: 4, payload: Buffer.from([0x03, 0xe8]) }], 'ERR_WS_UNEXPECTED_RSV1'],
    ['when compression was not negotiated', '', [{ opcode: 1, rsv: 4, payload: piece }], 'ERR_WS_UNEXPECTED_RSV1'],
    ['RSV2 with compression negotiated', OFFER, [{ opcode: 1, rsv: 2, payload: 'x' }], 'ERR_WS_RESERVED_BITS']
  ]
  for (const [name, headers, frames, code] of cases) {
    const { port, next } = await serve(t, { compression: true })
    const client = await WireClient.open(port, '/', headers)
    const served = await next()
    client.send(...frames)
    t.equal(await closeCode(client), 1002, `${name}: closed with 1002`)
    await served.done
    t.match(served.reads[0], { closeCode: 1002, code }, `${name}: the read failed with 1002 and ${code}`)
  }
})
