// Streaming reads over loopback TCP: nextReader consumes a message far bigger than what the
// connection buffers (the socket is paused instead), a new read discards the old reader's rest,
// and the read buffer's accounting stays exact across many streamed messages.
import t from 'tap'
import { once } from 'node:events'
import { randomBytes as cryptoRandomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { frameHeader, prng, randomBytes } from './helpers/frames.js'
import { clientFrame, hangGuard, rawPeer } from './helpers/raw.js'

const TEXT = 1
const BINARY = 2
const KiB = 1024
const MiB = 1024 * KiB
/** A masking key of zeros: legal, and it lets the test send huge payloads without masking them. */
const ZERO_KEY = Buffer.alloc(4)
/** Most bytes one 'data' event can carry on top of what was buffered before the pause. */
const CHUNK_SLACK = 256 * KiB

/** Whether `piece`, found at `position` of a stream made of `block` repeated, matches it. */
function matchesRepeated (piece: Buffer, position: number, block: Buffer): boolean {
  for (let offset = 0; offset < piece.length;) {
    const at = (position + offset) % block.length
    const count = Math.min(piece.length - offset, block.length - at)
    if (!piece.subarray(offset, offset + count).equals(block.subarray(at, at + count))) return false
    offset += count
  }
  return true
}

/** Counts the bytes `socket` delivers and waits for it to pause or to deliver a given amount. */
function watchDelivery (socket: Socket): { delivered: () => number, pausedOrDelivered: (total: number) => Promise<boolean> } {
  let delivered = 0
  let check: (() => void) | undefined
  socket.on('data', (chunk: Buffer) => {
    delivered += chunk.length
    check?.()
  })
  return {
    delivered: () => delivered,
    pausedOrDelivered: (total) => new Promise((resolve) => {
      check = () => {
        if (!socket.isPaused() && delivered < total) return
        check = undefined
        resolve(socket.isPaused())
      }
      check()
    })
  }
}

t.test('a 100 MiB message is streamed while the connection never buffers more than readBufferSize', async (t) => {
  const { conn, connSocket, peer, cleanup } = await rawPeer({ readLimit: 0, readBufferSize: MiB })
  t.teardown(cleanup)
  const total = 100 * MiB
  const block = cryptoRandomBytes(MiB)
  const header = frameHeader({ opcode: BINARY, length: total, mask: ZERO_KEY })
  let consumed = 0
  let maxUnread = 0
  let pausedWhileStalled = false
  let onPaused: (() => void) | undefined
  let delivered = 0
  connSocket.on('data', (chunk: Buffer) => {
    delivered += chunk.length
    maxUnread = Math.max(maxUnread, delivered - header.length - consumed)
    if (connSocket.isPaused() && onPaused !== undefined) {
      pausedWhileStalled = true
      onPaused()
    }
  })
  const readerReady = conn.nextReader()
  const sending = (async () => {
    peer.write(header)
    for (let i = 0; i < total / MiB; i++) {
      if (!peer.write(block)) await once(peer, 'drain')
    }
  })()
  const reader = await readerReady
  t.equal(reader.type, BINARY)
  let intact = true
  let stalled = false
  for (let piece = await reader.read(); piece !== null; piece = await reader.read()) {
    if (!matchesRepeated(piece, consumed, block)) intact = false
    consumed += piece.length
    if (!stalled && consumed >= 10 * MiB) {
      // Stop reading until the connection pauses the socket, so TCP holds the sender back.
      stalled = true
      await new Promise<void>((resolve) => { onPaused = resolve })
      onPaused = undefined
    }
  }
  await sending
  t.equal(consumed, total, 'every byte was read')
  t.ok(intact, 'the bytes arrived in order and intact')
  t.ok(pausedWhileStalled, 'the socket was paused while the reader stalled')
  t.ok(maxUnread <= MiB + CHUNK_SLACK, `at most readBufferSize + one chunk was ever buffered (max ${maxUnread})`)
  t.ok(reader.isFinished, 'the reader reports the end')
  t.equal(await reader.read(), null, 'reads after the end return null')
})

t.test('messages buffered before nextReader is called keep the read buffer accounting exact', async (t) => {
  const readBufferSize = 64 * KiB
  const { conn, connSocket, peer, cleanup } = await rawPeer({ readLimit: 0, readBufferSize })
  t.teardown(cleanup)
  const delivery = watchDelivery(connSocket)
  const payload = randomBytes(prng(7), 512 * KiB)
  const frameSize = clientFrame({ opcode: BINARY, payload, mask: ZERO_KEY }).length
  for (let round = 0; round < 12; round++) {
    const target = delivery.delivered() + frameSize
    peer.write(clientFrame({ opcode: BINARY, payload, mask: ZERO_KEY }))
    t.ok(await delivery.pausedOrDelivered(target), `round ${round}: the socket paused before the whole message arrived`)
    const reader = await conn.nextReader()
    t.ok((await reader.readAll()).equals(payload), `round ${round}: intact`)
  }
  // Now a message nobody reads: the socket must pause at the same threshold as on the first round.
  const before = delivery.delivered()
  const last = clientFrame({ opcode: BINARY, payload: Buffer.alloc(8 * MiB), mask: ZERO_KEY })
  peer.write(last)
  t.ok(await delivery.pausedOrDelivered(before + last.length), 'the socket paused')
  const buffered = delivery.delivered() - before
  t.ok(buffered <= readBufferSize + CHUNK_SLACK, `paused after ${buffered} bytes, not later`)
  const reader = await conn.nextReader()
  t.equal((await reader.readAll()).length, 8 * MiB)
})

t.test('a new read discards the rest of the previous streaming reader', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const first = randomBytes(prng(8), 3000)
  peer.write(clientFrame({ opcode: BINARY, payload: first.subarray(0, 1000), fin: false }))
  const reader = await conn.nextReader()
  const piece = await reader.read()
  t.ok(piece?.equals(first.subarray(0, 1000)), 'the first fragment is readable')
  const next = conn.readMessage()
  t.ok(reader.isFinished, 'starting a read finished the old reader at once')
  t.equal(await reader.read(), null, 'the old reader returns null')
  peer.write(Buffer.concat([
    clientFrame({ opcode: 0, payload: first.subarray(1000, 2000), fin: false }),
    clientFrame({ opcode: 0, payload: first.subarray(2000), fin: true }),
    clientFrame({ opcode: TEXT, payload: 'second' })
  ]))
  t.equal((await next).data.toString(), 'second', 'the rest of the first message was dropped')

  peer.write(Buffer.concat([clientFrame({ opcode: TEXT, payload: 'third' }), clientFrame({ opcode: TEXT, payload: 'fourth' })]))
  const third = await conn.nextReader()
  const fourth = await conn.nextReader()
  t.equal(await third.read(), null, 'an unread reader from an older message returns null')
  t.same(await third.readAll(), Buffer.alloc(0), 'and readAll gives nothing')
  t.equal((await fourth.readAll()).toString(), 'fourth')
  third.discard()
  t.ok(third.isFinished)
})

t.test('an empty final fragment ends the message for a waiting reader', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: TEXT, payload: 'all of it', fin: false }))
  const reader = await conn.nextReader()
  t.equal((await reader.read())?.toString(), 'all of it')
  const waiting = reader.read()
  peer.write(clientFrame({ opcode: 0, payload: '', fin: true }))
  t.equal(await waiting, null)
})

t.test('a reader waiting for data is released by a new read', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: TEXT, payload: 'start', fin: false }))
  const reader = await conn.nextReader()
  t.equal((await reader.read())?.toString(), 'start')
  const waiting = reader.read()
  const next = conn.readMessage()
  t.equal(await waiting, null, 'the waiting read ends with null')
  peer.write(Buffer.concat([clientFrame({ opcode: 0, payload: 'rest' }), clientFrame({ opcode: TEXT, payload: 'next' })]))
  t.equal((await next).data.toString(), 'next')
})

t.test('concurrent reads of one reader each get a piece or the end', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: BINARY, payload: 'a', fin: false }))
  const reader = await conn.nextReader()
  t.equal((await reader.read())?.toString(), 'a')
  const reads = [reader.read(), reader.read(), reader.read()]
  peer.write(Buffer.concat([clientFrame({ opcode: 0, payload: 'b', fin: false }), clientFrame({ opcode: 0, payload: 'c', fin: true })]))
  const results = await Promise.race([Promise.all(reads), hangGuard(3000, 'a read never settled')])
  t.same(Array.isArray(results) ? results.map((piece) => piece?.toString() ?? null) : results, ['b', 'c', null])
})

t.test('a streaming reader fails with the connection error when the message is cut off', async (t) => {
  const { conn, peer, cleanup } = await rawPeer({ closeTimeout: 50 })
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: BINARY, payload: 'part', fin: false }))
  const reader = await conn.nextReader()
  t.equal((await reader.read())?.toString(), 'part')
  const waiting = reader.read()
  peer.end()
  const error = await waiting.catch((e: unknown) => e)
  t.match(error, { name: 'CloseError', code: 1006 }, 'the waiting read rejects with 1006')
  await t.rejects(reader.read(), error as Error, 'and so does the next one')
  t.equal(await conn.readMessage().catch((e: unknown) => e), error, 'reads on the connection share the error')
})

t.test('pieces already received are still read before the failure is reported', async (t) => {
  const { conn, peer, cleanup } = await rawPeer({ closeTimeout: 50 })
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: BINARY, payload: 'one', fin: false }))
  const reader = await conn.nextReader()
  peer.write(clientFrame({ opcode: 0, payload: 'two', fin: false }))
  peer.end()
  await conn.closed
  const pieces: string[] = []
  await t.rejects((async () => {
    for await (const piece of reader) pieces.push(piece.toString())
  })(), { code: 1006 })
  t.same(pieces.join(''), 'onetwo')
})
