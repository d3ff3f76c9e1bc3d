// Control frames over loopback TCP: writeControl between the fragments of an open writer, its
// limits and deadline, CloseSentError after a close frame, the ping, pong and close handlers; then
// read and write deadlines (short deadlines make things happen; no assertion depends on how long
// anything took).
import t from 'tap'
import { TimeoutError } from '../lib/protocol/errors.js'
import { clientFrame, closePayload, hangGuard, parseClose, rawPeer, sleep, stallingSize } from './helpers/raw.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { Conn } from '../lib/conn/conn.js'
import { socketPair } from './helpers/tcp-pair.js'

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const PONG = 10

t.test('writeControl slips a ping between the fragments of an open writer', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 100 })
  t.teardown(cleanup)
  const writer = await conn.nextWriter(BINARY)
  await writer.write(Buffer.alloc(250, 1))
  await conn.writeControl(PING, 'between')
  await writer.write(Buffer.alloc(100, 2))
  await writer.close()
  const frames = []
  for (let i = 0; i < 5; i++) frames.push(await wire.nextFrame())
  t.same(frames.map((f) => [f.opcode, f.fin, f.payload.length]), [
    [BINARY, false, 100], [0, false, 100], [PING, true, 7], [0, false, 100], [0, true, 50]
  ], 'the ping sits between continuation frames')
  t.equal(frames[2]!.payload.toString(), 'between')
})

t.test('writeControl checks its payload size, type and deadline', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  await t.rejects(conn.writeControl(PING, Buffer.alloc(126)), { name: 'UsageError' }, '126 bytes are too many')
  await t.rejects(conn.writeControl(TEXT as never, 'x'), { name: 'UsageError' }, 'a data type is not a control type')
  await t.rejects(conn.writeControl(PING, 'late', Date.now() - 1), { name: 'TimeoutError', timeout: true }, 'a past deadline (ms)')
  await t.rejects(conn.writeControl(PING, 'late', new Date(Date.now() - 1000)), { name: 'TimeoutError' }, 'a past deadline (Date)')
  await conn.writeControl(PING, Buffer.alloc(125, 0x61), new Date(Date.now() + 60_000))
  await conn.writeControl(PONG, new Uint8Array([1, 2, 3]))
  await conn.writeControl(PING)
  const frames = [await wire.nextFrame(), await wire.nextFrame(), await wire.nextFrame()]
  t.same(frames.map((f) => [f.opcode, f.payload.toString('hex')]), [
    [PING, Buffer.alloc(125, 0x61).toString('hex')], [PONG, '010203'], [PING, '']
  ], 'only the valid frames were sent')
  await conn.writeMessage(TEXT, 'still writable')
  t.equal((await wire.nextMessage()).data.toString(), 'still writable', 'a rejected control write does not break the connection')
})

t.test('after a close frame every write rejects with CloseSentError', async (t) => {
  const { conn, wire, cleanup } = await rawPeer({ writeBufferSize: 10, closeTimeout: 50 })
  t.teardown(cleanup)
  const writer = await conn.nextWriter(TEXT)
  await writer.write('0123456789abc')
  const queued = conn.writeMessage(TEXT, 'queued behind the writer')
  const queuedWriter = conn.nextWriter(TEXT)
  await conn.writeControl(CLOSE, closePayload(4001, 'done'))
  const closeSent = { name: 'CloseSentError', code: 'ERR_WS_CLOSE_SENT' }
  await t.rejects(conn.writeMessage(TEXT, 'x'), closeSent, 'writeMessage')
  await t.rejects(conn.writeMessage(BINARY, Buffer.alloc(1)), closeSent, 'writeMessage binary')
  await t.rejects(conn.writeJSON({}), closeSent, 'writeJSON')
  await t.rejects(conn.writeControl(PING, ''), closeSent, 'writeControl ping')
  await t.rejects(conn.writeControl(CLOSE, closePayload(1000)), closeSent, 'a second close frame')
  await t.rejects(conn.nextWriter(TEXT), closeSent, 'nextWriter')
  await t.rejects(conn.writePreparedMessage(new PreparedMessage(TEXT, 'p')), closeSent, 'writePreparedMessage')
  await t.rejects(writer.close(), closeSent, 'the open writer cannot finish its message')
  await t.rejects(queued, closeSent, 'a write queued behind it is refused')
  await t.rejects(queuedWriter, closeSent, 'and so is a queued writer')
  const first = await wire.nextFrame()
  t.same([first.opcode, first.fin, first.payload.toString()], [TEXT, false, '0123456789'], 'the full fragment went out')
  t.same(parseClose(await wire.nextFrame()), { code: 4001, reason: 'done' }, 'then the close frame, and nothing else')
  await conn.closed
  t.equal(wire.pending, 0)
})

t.test('the default ping handler answers with a pong of the same payload without any read', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  for (const payload of ['', 'hello', 'x'.repeat(125)]) {
    peer.write(clientFrame({ opcode: PING, payload }))
    const pong = await wire.nextFrame()
    t.same([pong.opcode, pong.payload.toString(), pong.maskKey], [PONG, payload, undefined], `pong for a ${payload.length}-byte ping`)
  }
  t.notOk(conn.socket.destroyed, 'the connection is still open')
})

t.test('no pong is sent once our close frame went out or the write side broke', async (t) => {
  const closing = await rawPeer()
  t.teardown(closing.cleanup)
  const closed = closing.conn.close(1000)
  closing.peer.write(Buffer.concat([clientFrame({ opcode: PING, payload: 'late' }), clientFrame({ opcode: CLOSE, payload: closePayload(1000) })]))
  t.same(parseClose(await closing.wire.nextFrame()), { code: 1000, reason: '' })
  await closing.wire.waitEnd()
  closing.peer.end()
  await closed
  t.equal(closing.wire.pending, 0, 'the ping after our close frame was not answered')

  const broken = await rawPeer()
  t.teardown(broken.cleanup)
  broken.conn.setWriteDeadline(Date.now() - 1)
  await t.rejects(broken.conn.writeMessage(TEXT, 'x'), TimeoutError)
  broken.peer.write(Buffer.concat([clientFrame({ opcode: PING, payload: 'hello?' }), clientFrame({ opcode: TEXT, payload: 'after the ping' })]))
  t.equal((await broken.conn.readMessage()).data.toString(), 'after the ping')
  t.equal(broken.wire.pending, 0, 'a broken write side sends no pong')
})

t.test('custom ping and pong handlers get the payload; null restores the defaults', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const pings: string[] = []
  const pongs: string[] = []
  conn.setPingHandler((data) => { pings.push(data.toString()) })
  conn.setPongHandler(async (data) => { pongs.push(data.toString()) })
  peer.write(Buffer.concat([
    clientFrame({ opcode: PING, payload: 'p1' }),
    clientFrame({ opcode: PONG, payload: 'q1' }),
    clientFrame({ opcode: TEXT, payload: 'marker' })
  ]))
  t.equal((await conn.readMessage()).data.toString(), 'marker')
  t.same(pings, ['p1'], 'the ping handler ran')
  t.same(pongs, ['q1'], 'the pong handler ran')
  conn.setPingHandler(null)
  conn.setPongHandler(null)
  peer.write(Buffer.concat([clientFrame({ opcode: PONG, payload: 'q2' }), clientFrame({ opcode: PING, payload: 'p2' })]))
  const frame = await wire.nextFrame()
  t.same([frame.opcode, frame.payload.toString()], [PONG, 'p2'], 'the first frame sent at all is the default pong to p2')
  t.same([pings, pongs], [['p1'], ['q1']], 'the old handlers no longer run')
})

t.test('a pong observer given at construction sees every pong before the pong handler', async (t) => {
  const { serverSocket, clientSocket, listener } = await socketPair()
  const seen: string[] = []
  const conn = new Conn(serverSocket, { isServer: true, hooks: { pongObserver: (observed, data) => { seen.push(`observer ${data.toString()}${observed === conn ? '' : ' of another connection'}`) } } })
  t.teardown(async () => {
    conn.terminate()
    clientSocket.destroy()
    await conn.closed
    listener.close()
  })
  const marker = async (text: string): Promise<void> => {
    clientSocket.write(clientFrame({ opcode: TEXT, payload: text }))
    t.equal((await conn.readMessage()).data.toString(), text)
  }
  clientSocket.write(clientFrame({ opcode: PONG, payload: 'a' }))
  await marker('no handler yet')
  conn.setPongHandler((data) => { seen.push(`handler ${data.toString()}`) })
  clientSocket.write(clientFrame({ opcode: PONG, payload: 'b' }))
  await marker('with a handler')
  conn.setPongHandler(null)
  clientSocket.write(clientFrame({ opcode: PONG, payload: 'c' }))
  await marker('handler removed')
  conn.setPongHandler(() => { throw new Error('the handler fails') })
  clientSocket.write(clientFrame({ opcode: PONG, payload: 'd' }))
  await t.rejects(conn.readMessage(), { message: 'the handler fails' })
  t.same(seen, ['observer a', 'observer b', 'handler b', 'observer c', 'observer d'],
    'the observer runs first, with or without a handler, and setPongHandler(null) does not remove it')
})

t.test('a throwing or rejecting ping or pong handler becomes the read error', async (t) => {
  const NOT_AN_ERROR: unknown = 'not an Error'
  const cases: Array<[string, number, (conn: Awaited<ReturnType<typeof rawPeer>>['conn'], error: Error) => void]> = [
    ['ping handler throws', PING, (conn, error) => { conn.setPingHandler(() => { throw error }) }],
    ['ping handler rejects', PING, (conn, error) => { conn.setPingHandler(async () => { throw error }) }],
    ['pong handler throws', PONG, (conn, error) => { conn.setPongHandler(() => { throw error }) }],
    ['pong handler throws a string', PONG, (conn) => { conn.setPongHandler(() => { throw NOT_AN_ERROR }) }]
  ]
  for (const [label, opcode, install] of cases) {
    const { conn, peer, cleanup } = await rawPeer()
    t.teardown(cleanup)
    const error = new Error(label)
    install(conn, error)
    const reading = conn.readMessage()
    peer.write(clientFrame({ opcode, payload: 'x' }))
    const failure = await reading.catch((e: unknown) => e)
    if (label.endsWith('string')) t.match(failure, { message: 'not an Error' }, `${label}: wrapped in an Error`)
    else t.equal(failure, error, `${label}: the read rejects with that error`)
    t.equal(await conn.readMessage().catch((e: unknown) => e), failure, `${label}: and every later read too`)
  }
})

t.test('the default close handler echoes the code and ends TCP', async (t) => {
  const cases: Array<[string, Buffer, number, string]> = [
    ['1001 with a reason', closePayload(1001, 'going'), 1001, 'going'],
    ['4000', closePayload(4000), 4000, ''],
    ['no status', Buffer.alloc(0), 1005, '']
  ]
  for (const [label, payload, code, text] of cases) {
    const { conn, peer, wire, cleanup } = await rawPeer()
    t.teardown(cleanup)
    peer.write(clientFrame({ opcode: CLOSE, payload }))
    await t.rejects(conn.readMessage(), { name: 'CloseError', code, text }, `${label}: the read reports it`)
    const echo = await wire.nextFrame()
    t.equal(echo.opcode, CLOSE)
    t.equal(echo.payload.length, code === 1005 ? 0 : 2, `${label}: the echo has the code and no reason`)
    t.same(parseClose(echo), { code, reason: '' })
    await wire.waitEnd()
    t.ok(wire.ended, `${label}: the server ended TCP`)
    peer.end()
    await conn.closed
  }
})

t.test('a custom close handler replaces the echo', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const seen: Array<[number, string]> = []
  let handled!: () => void
  const handlerRan = new Promise<void>((resolve) => { handled = resolve })
  conn.setCloseHandler((code, text) => {
    seen.push([code, text])
    handled()
  })
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(3001, 'custom') }))
  await t.rejects(conn.readMessage(), { code: 3001, text: 'custom' })
  await handlerRan
  t.same(seen, [[3001, 'custom']])
  await conn.writeMessage(TEXT, 'last words')
  const next = await wire.nextFrame()
  t.same([next.opcode, next.payload.toString()], [TEXT, 'last words'], 'no close frame was sent on its own')
  const closing = conn.close(1000, 'now')
  t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: 'now' }, 'the application closes when it wants')
  await wire.waitEnd()
  t.ok(wire.ended, 'and TCP ends at once, the peer having sent its close already')
  peer.end()
  await closing
})

t.test('a close handler that throws or rejects does not break the closing handshake', async (t) => {
  for (const handler of [() => { throw new Error('sync') }, async () => { throw new Error('async') }]) {
    const { conn, peer, wire, cleanup } = await rawPeer({ closeTimeout: 50 })
    t.teardown(cleanup)
    conn.setCloseHandler(handler)
    peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(1000) }))
    await t.rejects(conn.readMessage(), { name: 'CloseError', code: 1000 }, 'the read reports the close frame')
    await conn.close()
    t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: '' })
  }
})

t.test('setCloseHandler(null) restores the echo', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  conn.setCloseHandler(() => {})
  conn.setCloseHandler(null)
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(1000, 'x') }))
  t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: '' })
  await wire.waitEnd()
  t.ok(wire.ended)
})

// ---- Deadlines ----

const MiB = 1024 * 1024
/** More than the kernel's socket buffers hold, so a peer that does not read stalls the writer. */
const STALLING_SIZE = stallingSize()
/** Allocated once, before any deadline is set, so allocating cannot eat into a deadline. */
const STALLING = Buffer.alloc(STALLING_SIZE)
const ONE_MIB = Buffer.alloc(MiB)

t.test('a read deadline fails the read side for good with TimeoutError', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  conn.setReadDeadline(Date.now() + 20)
  const error = await conn.readMessage().catch((e: unknown) => e)
  t.type(error, TimeoutError)
  t.match(error, { timeout: true, code: 'ERR_WS_TIMEOUT' })
  peer.write(clientFrame({ opcode: TEXT, payload: 'too late' }))
  t.equal(await conn.readMessage().catch((e: unknown) => e), error, 'the next read rejects with the same error')
  t.equal(await conn.nextReader().catch((e: unknown) => e), error)
  await conn.writeMessage(TEXT, 'the write side still works')
})

t.test('a past read deadline given as a Date fails at once, after the complete messages', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: TEXT, payload: 'already here' }))
  t.equal((await conn.readMessage()).data.toString(), 'already here')
  peer.write(Buffer.concat([clientFrame({ opcode: TEXT, payload: 'queued' }), clientFrame({ opcode: TEXT, payload: 'par', fin: false })]))
  await sleep(20)
  conn.setReadDeadline(new Date(Date.now() - 1000))
  await sleep(5)
  t.equal((await conn.readMessage()).data.toString(), 'queued', 'a message received in full before the deadline is still delivered')
  await t.rejects(conn.readMessage(), TimeoutError, 'the partial one is not')
})

t.test('a pong handler can extend the read deadline', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const firstDeadline = Date.now() + 300
  conn.setReadDeadline(firstDeadline)
  let extended!: () => void
  const pongSeen = new Promise<void>((resolve) => { extended = resolve })
  conn.setPongHandler(() => {
    conn.setReadDeadline(Date.now() + 60_000)
    extended()
  })
  const reading = conn.readMessage()
  await conn.writeControl(PING, 'keepalive')
  const ping = await wire.nextFrame()
  peer.write(clientFrame({ opcode: PONG, payload: ping.payload }))
  await pongSeen
  while (Date.now() <= firstDeadline + 50) await sleep(firstDeadline + 60 - Date.now())
  peer.write(clientFrame({ opcode: TEXT, payload: 'after the first deadline' }))
  t.equal((await reading).data.toString(), 'after the first deadline', 'the read outlived the first deadline')
  conn.setReadDeadline(null)
})

t.test('setReadDeadline(null) clears a deadline', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  conn.setReadDeadline(Date.now() + 20)
  conn.setReadDeadline(null)
  const reading = conn.readMessage()
  await sleep(60)
  peer.write(clientFrame({ opcode: TEXT, payload: 'fine' }))
  t.equal((await reading).data.toString(), 'fine')
})

t.test('a connection that fails before its read deadline reports the failure, not a timeout', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  conn.setReadDeadline(Date.now() + 60_000)
  const reading = conn.readMessage()
  peer.end()
  await t.rejects(reading, { name: 'CloseError', code: 1006 })
})

t.test('after a read deadline, new messages are dropped while pings are still answered', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  conn.setReadDeadline(Date.now())
  const error = await conn.readMessage().catch((e: unknown) => e)
  t.type(error, TimeoutError)
  peer.write(Buffer.concat([clientFrame({ opcode: TEXT, payload: 'dropped' }), clientFrame({ opcode: PING, payload: 'alive?' })]))
  const pong = await wire.nextFrame()
  t.same([pong.opcode, pong.payload.toString()], [PONG, 'alive?'], 'the frames after the message were still parsed')
  t.equal(await conn.readMessage().catch((e: unknown) => e), error, 'the message was not delivered')
})

t.test('a write deadline that breaks the write side fails the writes queued behind an open writer', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const writer = await conn.nextWriter(TEXT)
  const queued = conn.writeMessage(TEXT, 'queued')
  conn.setWriteDeadline(Date.now() - 1)
  const error = await conn.writeMessage(TEXT, 'x').catch((e: unknown) => e)
  t.type(error, TimeoutError)
  await t.rejects(writer.close(), error as Error, 'the writer cannot finish')
  t.equal(await queued.catch((e: unknown) => e), error, 'the queued write fails with the same error')
  t.equal(wire.pending, 0, 'nothing was sent')
})

t.test('clearing a write deadline that was never set changes nothing', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  conn.setWriteDeadline(null)
  await conn.writeMessage(TEXT, 'still writes')
  t.equal((await wire.nextMessage()).data.toString(), 'still writes')
})

t.test('a write deadline already past rejects every write with the same TimeoutError', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  conn.setWriteDeadline(new Date(Date.now() - 1))
  const error = await conn.writeMessage(TEXT, 'x').catch((e: unknown) => e)
  t.type(error, TimeoutError)
  t.equal(await conn.writeMessage(BINARY, 'y').catch((e: unknown) => e), error, 'sticky')
  t.equal(await conn.writeControl(PING).catch((e: unknown) => e), error, 'control frames too')
  t.equal(await conn.nextWriter(TEXT).catch((e: unknown) => e), error, 'and writers')
  conn.setWriteDeadline(null)
  t.equal(await conn.writeMessage(TEXT, 'x').catch((e: unknown) => e), error, 'clearing the deadline does not repair the write side')
  t.equal(wire.pending, 0)
})

t.test('a peer that never reads and a write deadline: the socket is destroyed, writes reject', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.pause()
  conn.setWriteDeadline(Date.now() + 100)
  const first = conn.writeMessage(BINARY, STALLING).catch((e: unknown) => e)
  const second = conn.writeMessage(BINARY, ONE_MIB).catch((e: unknown) => e)
  const error = await first
  t.type(error, TimeoutError, 'the stalled write rejects with TimeoutError')
  t.equal(await second, error, 'so does the one after it')
  await conn.closed
  t.ok(conn.socket.destroyed, 'the socket was destroyed')
  t.equal(await conn.writeMessage(TEXT, 'x').catch((e: unknown) => e), error, 'later writes reject with the same error')
})

t.test('a write deadline also bounds the frames of a nextWriter', async (t) => {
  const { conn, peer, cleanup } = await rawPeer({ writeBufferSize: MiB })
  t.teardown(cleanup)
  peer.pause()
  conn.setWriteDeadline(Date.now() + 100)
  const writer = await conn.nextWriter(BINARY)
  const writing = writer.write(STALLING)
  const outcome = await Promise.race([writing.then(() => 'resolved', (e: unknown) => e), hangGuard(5000, 'still pending after 5 s')])
  t.type(outcome, TimeoutError, 'the stalled writer rejects with TimeoutError')
  await conn.closed
})

t.test('writeControl with a deadline tears a stalled connection down at that deadline', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.pause()
  const stalled = conn.writeMessage(BINARY, STALLING)
  const error = await conn.writeControl(PING, 'are you there', Date.now() + 100).catch((e: unknown) => e)
  t.type(error, TimeoutError, 'the control write rejects')
  t.equal(await stalled.catch((e: unknown) => e), error, 'so does the stalled message')
})

t.test('the soonest deadline of the waiting writes tears a stalled connection down', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.pause()
  const stalled = conn.writeMessage(BINARY, STALLING).catch((e: unknown) => e)
  const patient = conn.writeControl(PING, 'a minute', Date.now() + 60_000).catch((e: unknown) => e)
  const morePatient = conn.writeControl(PING, 'two minutes', Date.now() + 120_000).catch((e: unknown) => e)
  const hasty = conn.writeControl(PING, 'soon', Date.now() + 100).catch((e: unknown) => e)
  const outcome = await Promise.race([hasty, hangGuard(5000, 'the soonest deadline was ignored')])
  t.type(outcome, TimeoutError, 'the write with the soonest deadline failed at its deadline')
  t.same(await Promise.all([stalled, patient, morePatient]), [outcome, outcome, outcome], 'taking every waiting write with it')
})

t.test('clearing the write deadline disarms it for a pending write', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.pause()
  const deadline = Date.now() + 100
  conn.setWriteDeadline(deadline)
  const writing = conn.writeMessage(BINARY, STALLING)
  conn.setWriteDeadline(null)
  while (Date.now() <= deadline + 50) await sleep(deadline + 60 - Date.now())
  peer.resume()
  const message = await wire.nextMessage()
  await writing
  t.equal(message.data.length, STALLING_SIZE, 'the write completed after the old deadline')
})
