// A Conn's life over loopback TCP: options and getters, construction, the closing handshake
// (close() after the writes accepted before it, waiting for the peer's close, closeTimeout),
// terminate(), EOF and socket errors, and sticky read errors.
import t from 'tap'
import { Duplex } from 'node:stream'
import { Conn } from '../lib/conn/conn.js'
import {
  DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_FRAGMENTS, DEFAULT_READ_BUFFER_SIZE, DEFAULT_READ_LIMIT, DEFAULT_WRITE_BUFFER_SIZE,
  resolveConnOptions
} from '../lib/options.js'
import { SimpleBufferPool } from '../lib/buffer-pool.js'
import { CloseError } from '../lib/protocol/errors.js'
import { clientFrame, closePayload, isSettledSoon, parseClose, rawPeer, stallingSize } from './helpers/raw.js'
import { connPair, socketPair } from './helpers/tcp-pair.js'

const TEXT = 1
const BINARY = 2
const CLOSE = 8

t.test('close() sends its frame after every write accepted before it', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({ writeBufferSize: 8 })
  t.teardown(cleanup)
  await conn.writeMessage(TEXT, 'before the writer')
  const writer = await conn.nextWriter(BINARY)
  const queued = [conn.writeMessage(TEXT, 'queued 1'), conn.writeMessage(TEXT, 'queued 2')]
  const closing = conn.close(4002, 'bye')
  await t.rejects(conn.writeMessage(TEXT, 'too late'), { name: 'CloseSentError' }, 'writes after close() are refused at once')
  await t.rejects(conn.nextWriter(TEXT), { name: 'CloseSentError' })
  await writer.write('the open writer may finish')
  await writer.close()
  await Promise.all(queued)
  const texts: string[] = []
  for (let i = 0; i < 4; i++) texts.push((await wire.nextMessage()).data.toString())
  t.same(texts, ['before the writer', 'the open writer may finish', 'queued 1', 'queued 2'], 'every earlier message, in order')
  t.same(parseClose(await wire.nextFrame()), { code: 4002, reason: 'bye' }, 'then the close frame')
  t.notOk(await isSettledSoon(closing), 'close() waits for the peer')
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(4002) }))
  await wire.waitEnd()
  t.ok(wire.ended, 'the server ended TCP once the peer answered')
  peer.end()
  await closing
  t.ok(conn.socket.destroyed, 'the socket is closed when close() resolves')
  await t.rejects(conn.readMessage(), { name: 'CloseError', code: 4002 }, "reads report the peer's close")
  t.equal(conn.close(), conn.closed, 'close() on a closed connection returns `closed`')
})

t.test('two Conns run the closing handshake to the end', async (t) => {
  const { server, client, cleanup } = await connPair()
  t.teardown(cleanup)
  const closing = client.close(1000, 'bye')
  t.equal(client.close(1001), closing, 'a second close() returns the same promise')
  await t.rejects(server.readMessage(), { name: 'CloseError', code: 1000, text: 'bye' })
  await Promise.all([closing, server.closed])
  await t.rejects(client.readMessage(), { name: 'CloseError', code: 1000, text: '' }, 'the client read the echo')
})

t.test('a close frame that arrives while our close waits in the queue ends TCP once ours is sent', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const writer = await conn.nextWriter(TEXT)
  const closing = conn.close(1000)
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(1000) }))
  await t.rejects(conn.readMessage(), { code: 1000 })
  await writer.write('finishing')
  await writer.close()
  t.equal((await wire.nextMessage()).data.toString(), 'finishing')
  t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: '' }, 'one close frame, not an echo and another')
  await wire.waitEnd()
  peer.end()
  await closing
  t.equal(wire.pending, 0)
})

t.test('a write waiting for drain resolves when the closing handshake ends TCP after flushing it', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  // More than the kernel takes at once, so the write waits for a drain; close() then ends TCP at once.
  const payload = Buffer.alloc(stallingSize(), 1)
  let writing: Promise<void> | undefined
  conn.setCloseHandler((code) => {
    writing = conn.writeMessage(BINARY, payload)
    return conn.close(code)
  })
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(1000) }))
  t.equal((await wire.nextMessage()).data.length, payload.length, 'the peer got the whole message')
  t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: '' })
  await wire.waitEnd()
  peer.end()
  await conn.closed
  await writing
  t.pass('and the write resolved')
})

t.test('a long close reason is cut at a character boundary to fit 123 bytes', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({ closeTimeout: 1000 })
  t.teardown(cleanup)
  const closing = conn.close(1000, '\u20ac'.repeat(50))
  const frame = await wire.nextFrame()
  t.equal(frame.payload.length, 2 + 123)
  t.same(parseClose(frame), { code: 1000, reason: '\u20ac'.repeat(41) })
  peer.write(clientFrame({ opcode: CLOSE }))
  peer.end()
  await closing
})

t.test('closeTimeout destroys the socket when the peer never answers', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({ closeTimeout: 30 })
  t.teardown(cleanup)
  const closing = conn.close(1001)
  t.same(parseClose(await wire.nextFrame()), { code: 1001, reason: '' })
  await closing
  t.ok(conn.socket.destroyed, 'destroyed after closeTimeout')
  await wire.waitEnd()
  t.pass('the peer saw the connection go')
  await t.rejects(conn.readMessage(), { name: 'CloseError', code: 1006 })
  await t.rejects(conn.writeMessage(TEXT, 'x'), { name: 'WriteClosedError' }, 'writes report the closed socket')
})

t.test('close() after a close frame was written or writing failed only ends TCP', async (t) => {
  const sent = await rawPeer({ closeTimeout: 30 })
  t.teardown(sent.cleanup)
  await sent.conn.writeControl(CLOSE, closePayload(1000))
  const closing = sent.conn.close(1001, 'ignored')
  t.same(parseClose(await sent.wire.nextFrame()), { code: 1000, reason: '' })
  await sent.wire.waitEnd()
  await closing
  t.equal(sent.wire.pending, 0, 'no second close frame')

  const failed = await rawPeer({ closeTimeout: 30 })
  t.teardown(failed.cleanup)
  failed.conn.setWriteDeadline(Date.now() - 1)
  await t.rejects(failed.conn.writeMessage(TEXT, 'x'), { name: 'TimeoutError' })
  await failed.conn.close()
  await failed.wire.waitEnd()
  t.equal(failed.wire.pending, 0, 'a broken write side sends no close frame')
})

t.test('terminate() tears the connection down at once', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 4 })
  t.teardown(cleanup)
  const reading = conn.readMessage()
  const writer = await conn.nextWriter(TEXT)
  await writer.write('ab')
  const queued = conn.writeMessage(TEXT, 'queued')
  conn.terminate()
  await conn.closed
  await t.rejects(reading, { name: 'CloseError', code: 1006 }, 'a waiting read fails with 1006')
  const writeError = await queued.catch((e: unknown) => e)
  t.match(writeError, { name: 'WriteClosedError' }, 'a queued write fails')
  t.equal(await conn.writeMessage(TEXT, 'x').catch((e: unknown) => e), writeError, 'later writes fail with the same error')
  await t.rejects(writer.write('cd'), writeError as Error, 'the open writer fails with it too')
  await t.rejects(writer.close(), writeError as Error, 'and cannot pretend to finish its message')
  await wire.waitEnd()
  t.equal(wire.pending, 0, 'nothing was sent')
  await conn.close()
  t.pass('close() after terminate() resolves')
})

t.test('EOF without a close frame fails reads with 1006, always the same error object', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: TEXT, payload: 'last' }))
  peer.end()
  t.equal((await conn.readMessage()).data.toString(), 'last', 'a message before the EOF is still delivered')
  const first = await conn.readMessage().catch((e: unknown) => e)
  t.type(first, CloseError)
  t.match(first, { code: 1006, text: 'unexpected EOF' })
  t.equal(await conn.readMessage().catch((e: unknown) => e), first, 'readMessage')
  t.equal(await conn.nextReader().catch((e: unknown) => e), first, 'nextReader')
  t.equal(await conn.readJSON().catch((e: unknown) => e), first, 'readJSON')
  await wire.waitEnd()
  t.ok(wire.ended, 'the Conn ended its side too')
  await conn.closed
  t.equal(await conn.readMessage().catch((e: unknown) => e), first, 'and after the socket closed')
})

t.test('a socket error fails reads with 1006 carrying the cause, and writes', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const reading = conn.readMessage()
  // Unread data makes the peer's kernel answer with a reset instead of a FIN.
  await conn.writeMessage(TEXT, 'unread')
  peer.resetAndDestroy()
  const error = await reading.catch((e: unknown) => e) as CloseError
  t.match(error, { name: 'CloseError', code: 1006 })
  t.match(error.cause, { code: 'ECONNRESET' }, 'the socket error is the cause')
  await conn.closed
  await t.rejects(conn.writeMessage(TEXT, 'x'), { name: 'WriteClosedError', message: /ECONNRESET/ })
})

t.test('a Conn over an already destroyed socket is closed from the start', async (t) => {
  const { serverSocket, clientSocket, listener } = await socketPair()
  t.teardown(() => { clientSocket.destroy(); listener.close() })
  serverSocket.destroy()
  const conn = new Conn(serverSocket, { isServer: true })
  await conn.closed
  await t.rejects(conn.readMessage(), { code: 1006 })
  await t.rejects(conn.writeMessage(TEXT, 'x'), { name: 'WriteClosedError' })
})

t.test('bytes that came with the handshake are parsed before anything else', async (t) => {
  const { serverSocket, clientSocket, listener } = await socketPair()
  const conn = new Conn(serverSocket, { isServer: true, head: clientFrame({ opcode: TEXT, payload: 'from head' }) })
  t.teardown(async () => { conn.terminate(); clientSocket.destroy(); await conn.closed; listener.close() })
  clientSocket.write(clientFrame({ opcode: TEXT, payload: 'from socket' }))
  t.equal((await conn.readMessage()).data.toString(), 'from head')
  t.equal((await conn.readMessage()).data.toString(), 'from socket')
  const empty = new Conn(clientSocket, { isServer: false, head: Buffer.alloc(0) })
  t.equal(empty.isServer, false)
})

// ---- Options and getters ----

t.test('resolveConnOptions fills in the documented defaults', async (t) => {
  t.same(resolveConnOptions(), {
    readLimit: 16 * 1024 * 1024,
    maxFragments: 131072,
    readBufferSize: 1024 * 1024,
    writeBufferSize: 4096,
    writeBufferPool: undefined,
    validateUtf8: true,
    closeTimeout: 5000,
    maxBufferedAmount: 4 * 1024 * 1024,
    slowConsumerPolicy: 'close'
  })
  t.same(
    [DEFAULT_READ_LIMIT, DEFAULT_MAX_FRAGMENTS, DEFAULT_READ_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE, DEFAULT_CLOSE_TIMEOUT],
    [16 * 1024 * 1024, 131072, 1024 * 1024, 4096, 5000]
  )
  const pool = new SimpleBufferPool(100)
  const given = {
    readLimit: 0,
    maxFragments: 1,
    readBufferSize: 1,
    writeBufferSize: 100,
    writeBufferPool: pool,
    validateUtf8: false,
    closeTimeout: 0,
    maxBufferedAmount: 0,
    slowConsumerPolicy: 'drop' as const
  }
  t.same(resolveConnOptions(given), given, 'the smallest allowed values are kept')
  t.equal(resolveConnOptions(given).writeBufferPool, pool)
})

t.test('resolveConnOptions throws a RangeError naming a bad option', async (t) => {
  const bad: Array<[string, number]> = [
    ['readLimit', -1], ['readLimit', 1.5], ['readLimit', Number.NaN], ['readLimit', Infinity],
    ['maxFragments', 0], ['readBufferSize', 0], ['writeBufferSize', 0], ['writeBufferSize', 2 ** 53],
    ['closeTimeout', -1], ['closeTimeout', 0.5]
  ]
  for (const [name, value] of bad) {
    t.throws(() => resolveConnOptions({ [name]: value }), { name: 'RangeError', message: new RegExp(`option ${name} must be an integer`) }, `${name} = ${value}`)
  }
  t.throws(() => new Conn(new Duplex({ read () {} }), { isServer: true, options: { writeBufferSize: -5 } }), RangeError, 'the Conn constructor checks too')
})

t.test('a Conn over TCP reports its addresses, role and settings', async (t) => {
  const { serverSocket, clientSocket, listener } = await socketPair()
  const response = { statusCode: 101, headers: { upgrade: 'websocket' } }
  const server = new Conn(serverSocket, { isServer: true, subprotocol: 'chat', extensions: 'x-test', options: { readLimit: 77, writeBufferSize: 1234, readBufferSize: 5678 } })
  const client = new Conn(clientSocket, { isServer: false, response })
  t.teardown(async () => { server.terminate(); client.terminate(); await Promise.all([server.closed, client.closed]); listener.close() })
  t.same([server.isServer, server.subprotocol, server.extensions, server.response], [true, 'chat', 'x-test', undefined])
  t.same([client.isServer, client.subprotocol, client.extensions, client.response], [false, '', '', response])
  t.same([server.readLimit, server.writeBufferSize, server.readBufferSize], [77, 1234, 5678])
  t.same([client.readLimit, client.writeBufferSize, client.readBufferSize], [DEFAULT_READ_LIMIT, DEFAULT_WRITE_BUFFER_SIZE, DEFAULT_READ_BUFFER_SIZE])
  t.equal(server.socket, serverSocket)
  t.equal(server.localAddress, '127.0.0.1')
  t.equal(server.remoteAddress, '127.0.0.1')
  t.equal(server.localPort, clientSocket.remotePort)
  t.equal(server.remotePort, clientSocket.localPort)
  t.equal(client.remotePort, server.localPort)
  t.equal(client.localPort, server.remotePort)
  t.equal(server.bufferedAmount, 0, 'nothing waits to be written')
})

t.test('a Conn over a plain Duplex has no addresses and still works', async (t) => {
  const written: Buffer[] = []
  const stream = new Duplex({
    read () {},
    write (chunk: Buffer, _encoding, callback) {
      written.push(chunk)
      callback()
    }
  })
  const conn = new Conn(stream, { isServer: true })
  t.same([conn.localAddress, conn.localPort, conn.remoteAddress, conn.remotePort], [undefined, undefined, undefined, undefined])
  await conn.writeMessage(1, 'hi')
  // Writes are corked until the end of the tick, so they reach the stream a moment later.
  await new Promise((resolve) => setImmediate(resolve))
  t.same(Buffer.concat(written), Buffer.from([0x81, 0x02, 0x68, 0x69]))
  conn.terminate()
  await conn.closed
  t.ok(stream.destroyed)
})

t.test('the frames written in one tick leave in one writev at its end', async (t) => {
  const calls: string[] = []
  const stream = new Duplex({
    read () {},
    write (chunk: Buffer, _encoding, callback) {
      calls.push(`write ${chunk.length}`)
      callback()
    },
    writev (chunks, callback) {
      calls.push(`writev ${chunks.map(({ chunk }) => (chunk as Buffer).length).join('+')}`)
      callback()
    }
  })
  const conn = new Conn(stream, { isServer: true })
  const writes = [conn.writeMessage(2, Buffer.alloc(1)), conn.writeMessage(2, Buffer.alloc(2)), conn.writeMessage(2, Buffer.alloc(20 * 1024))]
  t.same(calls, [], 'nothing before the tick ends')
  await Promise.all(writes)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calls, ['writev 3+4+4+20480'], 'one writev; the big payload beside its header, not copied')
  calls.length = 0
  await conn.writeMessage(2, Buffer.alloc(5))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calls, ['write 7'], 'a lone frame is one write')
  conn.terminate()
  await conn.closed
})

t.test('a transport that fails inside write() rejects that write instead of leaving it waiting', async (t) => {
  const failure = new Error('transport broke')
  const stream = new Duplex({
    read () {},
    write () {
      // Fails at once and never completes the write, as a broken custom transport might.
      this.emit('error', failure)
    }
  })
  const conn = new Conn(stream, { isServer: true })
  const error = await conn.writeMessage(2, Buffer.alloc(64 * 1024)).catch((e: unknown) => e)
  t.match(error, { name: 'WriteClosedError', message: /transport broke/ })
  await t.rejects(conn.readMessage(), { name: 'CloseError', code: 1006, cause: failure })
  conn.terminate()
  await conn.closed
})
