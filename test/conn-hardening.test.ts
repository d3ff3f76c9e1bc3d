// Hardening of the Conn over loopback TCP: the client's closing order (RFC 6455 §7.1.1), writes
// nobody awaits never becoming unhandled rejections, and no inflation spent on a connection that
// ended before anyone read its compressed messages.
import t from 'tap'
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { constants, deflateRawSync } from 'node:zlib'
import { Conn } from '../lib/conn/conn.js'
import { PerMessageDeflate } from '../lib/deflate/codec.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { CloseError, WriteClosedError } from '../lib/protocol/errors.js'
import { closePayload, isSettledSoon, parseClose, rawPeer, sleep, WireReader } from './helpers/raw.js'
import { frame } from './helpers/frames.js'
import { connPair, socketPair } from './helpers/tcp-pair.js'

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const MiB = 1024 * 1024
const AGREED = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }

t.test('client role: after the closing handshake the client waits for the server to end TCP', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({}, false)
  t.teardown(cleanup)
  peer.write(frame({ opcode: CLOSE, payload: closePayload(1000, 'server says bye') }))
  t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: '' }, 'the client echoed the close')
  // Long enough for the old behaviour (ending TCP right after the reply) to show.
  await sleep(100)
  t.notOk(wire.ended, 'the client has not ended TCP: that is the server\'s to do first')
  t.notOk(await isSettledSoon(conn.closed), 'the connection is not closed yet')
  peer.end()
  await conn.closed
  await wire.waitEnd()
  t.ok(wire.ended, 'the client answered the server\'s end with its own')
})

t.test('client role: close() waits for the server\'s end as well, up to closeTimeout', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({ closeTimeout: 300 }, false)
  t.teardown(cleanup)
  const closing = conn.close(1000, 'client says bye')
  t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: 'client says bye' }, 'the close frame went out')
  peer.write(frame({ opcode: CLOSE, payload: closePayload(1000) }))
  await sleep(100)
  t.notOk(wire.ended, 'the client waits for the server to end TCP')
  // The server never ends it: the client gives up after closeTimeout.
  await closing
  t.pass('close() resolved once closeTimeout destroyed the socket')
})

t.test('server role still ends TCP once both close frames are out', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(frame({ opcode: CLOSE, payload: closePayload(1000), mask: true }))
  t.equal(parseClose(await wire.nextFrame()).code, 1000, 'the server echoed the close')
  await wire.waitEnd()
  t.ok(wire.ended, 'and ended TCP itself')
  peer.end()
  await conn.closed
})

t.test('writes nobody awaits never become unhandled rejections; awaited ones still reject', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  for (const compression of [false, true]) {
    const { serverSocket, clientSocket, listener } = await socketPair()
    const conn = new Conn(serverSocket, { isServer: true, compression: compression ? { params: AGREED } : undefined })
    // A broadcast loop ported from `socket.send`: nothing awaited, some writes queued behind a
    // writer and a compression, others waiting for 'drain' when the peer goes away.
    const big = Buffer.alloc(4 * MiB, 7)
    conn.writeMessage(BINARY, big)
    conn.writeMessage(TEXT, 'x'.repeat(20_000))
    conn.writeJSON({ hello: 'world' })
    conn.writePreparedMessage(new PreparedMessage(TEXT, 'prepared'))
    conn.writeControl(PING, 'ping')
    conn.nextWriter(TEXT)
    conn.writeMessage(TEXT, 'behind the writer')
    clientSocket.destroy()
    await conn.closed
    // After the end: every kind of write is refused.
    conn.writeMessage(TEXT, 'after the end')
    conn.writeJSON({ after: 'the end' })
    conn.writePreparedMessage(new PreparedMessage(BINARY, Buffer.from('after')))
    conn.writeControl(PING)
    conn.nextWriter(BINARY)
    conn.writeMessage(99 as 1, 'bad type')
    await t.rejects(conn.writeMessage(TEXT, 'awaited'), WriteClosedError, 'an awaiting caller still gets the error')
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    t.same(unhandled, [], `no unhandled rejection (compression ${String(compression)})`)
    listener.close()
  }
})

t.test('a writer\'s writes nobody awaits never become unhandled rejections', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  const { server, client, cleanup } = await connPair()
  t.teardown(cleanup)
  const writer = await server.nextWriter(BINARY)
  writer.write(Buffer.alloc(100_000))
  client.terminate()
  await server.closed
  writer.write(Buffer.from('after the end'))
  writer.write(42 as unknown as Buffer)
  writer.close()
  writer.close()
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
  t.same(unhandled, [], 'no unhandled rejection')
})

/** Compressed messages that each inflate to 1 MiB on the thread pool, from a few hundred bytes. */
function bigCompressedMessages (count: number): Buffer {
  const frames: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const payload = deflateRawSync(Buffer.alloc(MiB, 97 + i), { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4)
    frames.push(frame({ opcode: TEXT, rsv1: true, payload, mask: true }))
  }
  return Buffer.concat(frames)
}

/** Counts the inflated bytes of every PerMessageDeflate made while the test runs. */
function countInflated (t: { teardown: (fn: () => void) => void }): { bytes: number } {
  const counter = { bytes: 0 }
  const original = PerMessageDeflate.prototype.inflateMessage
  PerMessageDeflate.prototype.inflateMessage = function (this: PerMessageDeflate, target, text) {
    return original.call(this, {
      ...target,
      onData: (chunk) => {
        counter.bytes += chunk.length
        target.onData(chunk)
      },
      onEnd: () => { target.onEnd() },
      onError: (error) => { target.onError(error) },
      onConsumed: (bytes) => { target.onConsumed?.(bytes) }
    }, text)
  }
  t.teardown(() => { PerMessageDeflate.prototype.inflateMessage = original })
  return counter
}

t.test('compressed messages of a connection that ended before anyone read them are not inflated', async (t) => {
  const inflated = countInflated(t)
  const { serverSocket, clientSocket, listener } = await socketPair()
  t.teardown(() => { listener.close() })
  const conn = new Conn(serverSocket, { isServer: true, compression: { params: AGREED } })
  clientSocket.end(bigCompressedMessages(20))
  await conn.closed
  const messages: number[] = []
  let failure: unknown
  try {
    for (;;) messages.push((await conn.readMessage()).data.length)
  } catch (error) {
    failure = error
  }
  t.ok(failure instanceof CloseError && failure.code === 1006, 'a late reader learns that TCP ended (1006)')
  t.ok(messages.length <= 2, `at most the messages inflated before the end arrived are delivered (${messages.length} of 20)`)
  t.ok(inflated.bytes <= 3 * MiB, `inflation stopped with the connection (${(inflated.bytes / MiB).toFixed(1)} MiB of 20 MiB)`)
})

t.test('a reader waiting when TCP ends still gets every message that came before the end, in order', async (t) => {
  const { serverSocket, clientSocket, listener } = await socketPair()
  t.teardown(() => { listener.close() })
  const conn = new Conn(serverSocket, { isServer: true, compression: { params: AGREED }, options: { readBufferSize: 64 * 1024 } })
  const reading = (async () => {
    const firsts: string[] = []
    try {
      for await (const message of conn) firsts.push(String.fromCharCode(message.data[0]!))
    } catch (error) {
      return { firsts, error }
    }
    return { firsts, error: undefined }
  })()
  clientSocket.end(bigCompressedMessages(12))
  const { firsts, error } = await reading
  t.equal(firsts.join(''), 'abcdefghijkl', 'all twelve, in order')
  t.ok(error instanceof CloseError && error.code === 1006, 'then 1006')
  await conn.closed
})

t.test('a ping behind a message inflating on the thread pool is answered only after it', async (t) => {
  const { serverSocket, clientSocket, listener } = await socketPair()
  t.teardown(() => {
    clientSocket.destroy()
    listener.close()
  })
  const conn = new Conn(serverSocket, { isServer: true, compression: { params: AGREED } })
  const wire = new WireReader(clientSocket)
  const first = conn.readMessage()
  clientSocket.write(Buffer.concat([bigCompressedMessages(1), frame({ opcode: PING, payload: 'p', mask: true })]))
  const pong = await wire.nextFrame()
  t.equal(pong.opcode, 10, 'the pong came')
  t.ok(await isSettledSoon(first), 'after the message before it was whole')
  t.equal((await first).data.length, MiB)
  conn.terminate()
})

t.test('the first read failure stays the error when a handler fails again later', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  let calls = 0
  let secondCall!: () => void
  const secondCalled = new Promise<void>((resolve) => { secondCall = resolve })
  conn.setPongHandler(() => {
    if (++calls === 2) secondCall()
    throw new Error(`pong handler failure ${calls}`)
  })
  const read = conn.readMessage()
  peer.write(Buffer.concat([frame({ opcode: 10, payload: 'a', mask: true }), frame({ opcode: 10, payload: 'b', mask: true })]))
  await t.rejects(read, { message: 'pong handler failure 1' }, 'the first failure')
  await secondCalled
  await t.rejects(conn.readMessage(), { message: 'pong handler failure 1' }, 'still the first after the second')
})

t.test('a peer that pings and never reads our pongs is pushed back by TCP, and gets every pong once it reads', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.pause()
  const ping = frame({ opcode: PING, payload: Buffer.alloc(125, 1), mask: true })
  const batch = Buffer.concat(Array.from({ length: 100 }, () => ping))
  let sent = 0
  // Up to 13 MiB of pings, or until the server stops taking them for half a second.
  while (sent < 100_000) {
    sent += 100
    if (peer.write(batch)) continue
    const drained = await Promise.race([once(peer, 'drain').then(() => true), sleep(500).then(() => false)])
    if (!drained) break
  }
  t.ok(sent < 100_000, `the server stopped reading after ${sent} pings`)
  t.ok(conn.bufferedAmount < 4 * MiB, `its unsent pongs stay bounded (${(conn.bufferedAmount / 1024).toFixed(0)} KiB)`)
  let pongs = 0
  const all = new Promise<void>((resolve) => {
    let pending = Buffer.alloc(0)
    peer.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      // Unmasked pongs of 125 bytes: 2 header bytes each.
      while (pending.length >= 127) {
        if (pending[0] === 0x8a) pongs++
        pending = pending.subarray(127)
      }
      if (pongs === sent) resolve()
    })
  })
  peer.resume()
  await all
  t.equal(pongs, sent, 'every ping was answered once the peer read')
})

t.test('a Conn made on a half-open socket whose peer already ended sees the end', async (t) => {
  // Half-open, as an HTTP server's upgraded sockets are: the end leaves our side writable.
  const listener = createServer({ allowHalfOpen: true }).listen(0, '127.0.0.1')
  await once(listener, 'listening')
  t.teardown(() => { listener.close() })
  const clientSocket = connect((listener.address() as AddressInfo).port, '127.0.0.1')
  const [serverSocket] = await once(listener, 'connection') as [Socket]
  clientSocket.end()
  serverSocket.resume()
  await once(serverSocket, 'end')
  serverSocket.pause()
  const conn = new Conn(serverSocket, { isServer: true })
  const failure = await conn.readMessage().catch((error: unknown) => error)
  t.ok(failure instanceof CloseError && failure.code === 1006, 'reads fail with 1006')
  await conn.closed
  t.pass('and the connection closes')
})

t.test('a streaming reader in the middle of a compressed message when TCP ends gets it whole, and the message after it', async (t) => {
  const { serverSocket, clientSocket, listener } = await socketPair()
  t.teardown(() => { listener.close() })
  const conn = new Conn(serverSocket, { isServer: true, compression: { params: AGREED } })
  const reading = conn.nextReader()
  clientSocket.end(bigCompressedMessages(2))
  const reader = await reading
  let streamed = 0
  for await (const piece of reader) streamed += piece.length
  t.equal(streamed, MiB, 'the streamed message arrived whole')
  t.equal((await conn.readMessage()).data[0], 98, 'then the message after it')
  const failure = await conn.readMessage().catch((error: unknown) => error)
  t.ok(failure instanceof CloseError && failure.code === 1006, 'then 1006')
})
