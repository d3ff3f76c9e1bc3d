// Conn reading over loopback TCP: whole messages, the async iterator, order under concurrent
// readers, every length encoding, frames split at every byte, 16 MiB messages, JSON and aborts;
// then protocol failures: a raw client breaks a rule, the server answers with the right close code,
// ends TCP, and its reads reject with a ProtocolError or ReadLimitError.
import t from 'tap'
import { CloseError, ProtocolError, ReadLimitError } from '../lib/protocol/errors.js'
import { frame, frameHeader, prng, randomBytes } from './helpers/frames.js'
import { clientFrame, closePayload, parseClose, rawPeer, sendByteByByte } from './helpers/raw.js'
import { connPair } from './helpers/tcp-pair.js'

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const PONG = 10
const MiB = 1024 * 1024

t.test('readMessage returns each message whole for every length encoding', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const random = prng(1)
  const lengths = [0, 1, 125, 126, 65535, 65536, 200_000]
  const payloads = lengths.map((length) => randomBytes(random, length))
  peer.write(Buffer.concat(payloads.map((payload) => clientFrame({ opcode: BINARY, payload }))))
  peer.write(clientFrame({ opcode: TEXT, payload: 'h\u00e9llo \u{1f600}' }))
  for (const [i, payload] of payloads.entries()) {
    const message = await conn.readMessage()
    t.equal(message.type, BINARY, `binary message of ${lengths[i]} bytes`)
    t.ok(message.data.equals(payload), `payload of ${lengths[i]} bytes intact`)
  }
  const text = await conn.readMessage()
  t.same({ type: text.type, data: text.data.toString() }, { type: TEXT, data: 'h\u00e9llo \u{1f600}' })
})

t.test('a 64-bit length header split at every byte still announces 65536 bytes', async (t) => {
  const { conn, connSocket, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const payload = randomBytes(prng(2), 65536)
  const bytes = clientFrame({ opcode: BINARY, payload })
  t.equal(frameHeader({ opcode: BINARY, payload, mask: true }).length, 14, 'a 14-byte header')
  const reading = conn.readMessage()
  await sendByteByByte(peer, connSocket, bytes.subarray(0, 15))
  peer.write(bytes.subarray(15))
  t.ok((await reading).data.equals(payload))
})

t.test('a stream of frames delivered one byte per TCP segment parses exactly', async (t) => {
  const { conn, connSocket, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const binary125 = randomBytes(prng(3), 125)
  const binary300 = randomBytes(prng(4), 300)
  const stream = Buffer.concat([
    clientFrame({ opcode: TEXT, payload: '' }),
    clientFrame({ opcode: TEXT, payload: 'h\u00e9llo \u20ac\u{1f600}' }),
    clientFrame({ opcode: BINARY, payload: binary125 }),
    clientFrame({ opcode: BINARY, payload: Buffer.alloc(126, 7) }),
    clientFrame({ opcode: TEXT, payload: 'ab', fin: false }),
    clientFrame({ opcode: PING, payload: 'between fragments' }),
    clientFrame({ opcode: 0, payload: Buffer.from('c\u20ac').subarray(0, 2), fin: false }),
    clientFrame({ opcode: 0, payload: Buffer.from('c\u20ac').subarray(2), fin: false }),
    clientFrame({ opcode: 0, payload: '', fin: true }),
    clientFrame({ opcode: PONG, payload: 'ignored' }),
    clientFrame({ opcode: BINARY, payload: binary300.subarray(0, 100), fin: false }),
    clientFrame({ opcode: 0, payload: binary300.subarray(100, 299), fin: false }),
    clientFrame({ opcode: 0, payload: binary300.subarray(299), fin: true }),
    clientFrame({ opcode: CLOSE, payload: closePayload(1000, 'done') })
  ])
  const messages: Array<{ type: number, data: string }> = []
  const reading = (async () => {
    for await (const message of conn) messages.push({ type: message.type, data: message.data.toString('hex') })
  })()
  await sendByteByByte(peer, connSocket, stream)
  await reading
  t.same(messages, [
    { type: TEXT, data: '' },
    { type: TEXT, data: Buffer.from('h\u00e9llo \u20ac\u{1f600}').toString('hex') },
    { type: BINARY, data: binary125.toString('hex') },
    { type: BINARY, data: Buffer.alloc(126, 7).toString('hex') },
    { type: TEXT, data: Buffer.from('abc\u20ac').toString('hex') },
    { type: BINARY, data: binary300.toString('hex') }
  ])
  const pong = await wire.nextFrame()
  t.same({ opcode: pong.opcode, payload: pong.payload.toString() }, { opcode: PONG, payload: 'between fragments' }, 'the ping was answered')
  t.same(parseClose(await wire.nextFrame()), { code: 1000, reason: '' }, 'the close was echoed')
})

t.test('the async iterator ends cleanly on close 1000, 1001 and 1005', async (t) => {
  for (const code of [1000, 1001, 1005]) {
    const { conn, peer, cleanup } = await rawPeer()
    t.teardown(cleanup)
    peer.write(Buffer.concat([
      clientFrame({ opcode: TEXT, payload: 'one' }),
      clientFrame({ opcode: TEXT, payload: 'two' }),
      clientFrame({ opcode: CLOSE, payload: code === 1005 ? '' : closePayload(code, 'bye') })
    ]))
    const seen: string[] = []
    for await (const message of conn) seen.push(message.data.toString())
    t.same(seen, ['one', 'two'], `messages before close ${code}, then a clean end`)
    await t.rejects(conn.readMessage(), { name: 'CloseError', code }, `later reads still report ${code}`)
  }
})

t.test('the async iterator throws on other close codes, protocol errors and EOF', async (t) => {
  const cases: Array<[string, Buffer | 'eof', { name: string, code?: number | string, text?: string, closeCode?: number }]> = [
    ['close 1011', clientFrame({ opcode: CLOSE, payload: closePayload(1011, 'oops') }), { name: 'CloseError', code: 1011, text: 'oops' }],
    ['close 4000', clientFrame({ opcode: CLOSE, payload: closePayload(4000) }), { name: 'CloseError', code: 4000 }],
    ['a reserved opcode', clientFrame({ opcode: 3 }), { name: 'ProtocolError', closeCode: 1002, code: 'ERR_WS_RESERVED_OPCODE' }],
    ['EOF without close', 'eof', { name: 'CloseError', code: 1006 }]
  ]
  for (const [label, ending, expected] of cases) {
    const { conn, peer, cleanup } = await rawPeer({ closeTimeout: 50 })
    t.teardown(cleanup)
    peer.write(clientFrame({ opcode: TEXT, payload: 'first' }))
    if (ending === 'eof') peer.end()
    else peer.write(ending)
    const seen: string[] = []
    const loop = (async () => {
      for await (const message of conn) seen.push(message.data.toString())
    })()
    await t.rejects(loop, expected, `${label} ends the loop with an error`)
    t.same(seen, ['first'], `${label}: the message before it was delivered`)
  }
})

t.test('concurrent readers receive messages in call order', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const reads = Array.from({ length: 20 }, () => conn.readMessage())
  peer.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => clientFrame({ opcode: TEXT, payload: `message ${i}` }))))
  const got = await Promise.all(reads)
  t.same(got.map((m) => m.data.toString()), Array.from({ length: 20 }, (_, i) => `message ${i}`))
  // Readers that arrive after the messages do, mixed with streaming readers.
  peer.write(Buffer.concat(['a', 'b', 'c'].map((payload) => clientFrame({ opcode: TEXT, payload }))))
  const first = conn.readMessage()
  const second = conn.nextReader()
  const secondText = second.then(async (reader) => (await reader.readAll()).toString())
  t.equal((await first).data.toString(), 'a')
  t.equal(await secondText, 'b')
  t.equal((await conn.readMessage()).data.toString(), 'c')
})

t.test('a 16 MiB message travels whole in both directions', async (t) => {
  const { server, client, cleanup } = await connPair({ readLimit: 16 * MiB }, { readLimit: 16 * MiB })
  t.teardown(cleanup)
  const big = randomBytes(prng(5), 4096)
  const payload = Buffer.alloc(16 * MiB)
  for (let at = 0; at < payload.length; at += big.length) big.copy(payload, at)
  payload.writeUInt32BE(0xdeadbeef, payload.length - 4)
  const [, received] = await Promise.all([client.writeMessage(BINARY, payload), server.readMessage()])
  t.equal(received.data.length, 16 * MiB)
  t.ok(received.data.equals(payload), 'client to server intact')
  const [, echoed] = await Promise.all([server.writeMessage(BINARY, received.data), client.readMessage()])
  t.ok(echoed.data.equals(payload), 'server to client intact')
  t.equal(server.readLimit, 16 * MiB)
})

t.test('a message sent as thousands of tiny fragments is reassembled in order', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const payload = randomBytes(prng(6), 12_000)
  const pieces = [payload.subarray(0, 3000)]
  for (let at = 3000; at < 10_000; at++) pieces.push(payload.subarray(at, at + 1))
  pieces.push(payload.subarray(10_000, 10_500), payload.subarray(10_500))
  const fragments = (): Buffer => Buffer.concat(pieces.map((piece, i) => clientFrame({
    opcode: i === 0 ? BINARY : 0, payload: piece, fin: i === pieces.length - 1
  })))
  peer.write(fragments())
  t.ok((await conn.readMessage()).data.equals(payload), 'readMessage reassembles')
  peer.write(fragments())
  const reader = await conn.nextReader()
  const streamed: Buffer[] = []
  for await (const piece of reader) streamed.push(piece)
  t.ok(Buffer.concat(streamed).equals(payload), 'a streaming reader sees the same bytes in order')
})

t.test('readJSON parses messages; bad JSON rejects that read only', async (t) => {
  const { server, client, cleanup } = await connPair()
  t.teardown(cleanup)
  await client.writeJSON({ a: 1, list: [true, null] })
  t.same(await server.readJSON(), { a: 1, list: [true, null] })
  await client.writeMessage(TEXT, '{"broken": ')
  await client.writeJSON('next')
  await t.rejects(server.readJSON(), SyntaxError, 'bad JSON rejects')
  t.equal(await server.readJSON(), 'next', 'the next readJSON works')
  await t.rejects(client.writeJSON(undefined), { name: 'UsageError' }, 'undefined has no JSON form')
  await t.rejects(client.writeJSON(() => 1), { name: 'UsageError' }, 'nor has a function')
})

t.test('writeJSON sends one text frame with no trailing newline', async (t) => {
  const { conn, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  await conn.writeJSON({ hello: 'w\u00f6rld' })
  const message = await wire.nextMessage()
  t.equal(message.opcode, TEXT)
  t.equal(message.data.toString(), '{"hello":"w\u00f6rld"}')
})

t.test('an aborted signal rejects only that read', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const early = new AbortController()
  early.abort(new Error('gave up early'))
  await t.rejects(conn.readMessage({ signal: early.signal }), { message: 'gave up early' }, 'an already aborted signal rejects at once')
  await t.rejects(conn.nextReader({ signal: early.signal }), { message: 'gave up early' })

  const controller = new AbortController()
  const waiting = conn.readMessage({ signal: controller.signal })
  const streamController = new AbortController()
  const waitingStream = conn.nextReader({ signal: streamController.signal })
  controller.abort(new Error('not any more'))
  streamController.abort(new Error('nor this one'))
  await t.rejects(waiting, { message: 'not any more' })
  await t.rejects(waitingStream, { message: 'nor this one' })
  peer.write(clientFrame({ opcode: TEXT, payload: 'late' }))
  const kept = new AbortController()
  t.equal((await conn.readMessage({ signal: kept.signal })).data.toString(), 'late', 'the next read gets the message')
  kept.abort(new Error('after the fact'))
  peer.write(clientFrame({ opcode: TEXT, payload: 'still fine' }))
  t.equal((await conn.readMessage()).data.toString(), 'still fine', 'aborting a finished read changes nothing')
})

t.test('a read with a signal that fails with the connection stops listening to its signal', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const controller = new AbortController()
  const reading = conn.readMessage({ signal: controller.signal })
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(1000, 'bye') }))
  await t.rejects(reading, { name: 'CloseError', code: 1000 })
  controller.abort(new Error('too late'))
  await t.rejects(conn.readMessage(), { name: 'CloseError', code: 1000 }, 'later reads still get the close, not the abort reason')
})

t.test('aborting a read in the middle or at the end of the queue keeps the others in order', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const middle = new AbortController()
  const last = new AbortController()
  const first = conn.readMessage()
  const second = conn.readMessage({ signal: middle.signal })
  const third = conn.readMessage()
  const fourth = conn.readMessage({ signal: last.signal })
  middle.abort(new Error('middle'))
  last.abort(new Error('last'))
  await t.rejects(second, { message: 'middle' })
  await t.rejects(fourth, { message: 'last' })
  const fifth = conn.readMessage()
  peer.write(Buffer.concat(['one', 'two', 'three'].map((payload) => clientFrame({ opcode: TEXT, payload }))))
  t.same([await first, await third, await fifth].map((m) => m.data.toString()), ['one', 'two', 'three'])
})

t.test('leaving a for-await loop early loses no message', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(Buffer.concat(['a', 'b', 'c'].map((payload) => clientFrame({ opcode: TEXT, payload }))))
  const seen: string[] = []
  for await (const message of conn) {
    seen.push(message.data.toString())
    if (seen.length === 2) break
  }
  t.same(seen, ['a', 'b'])
  t.equal((await conn.readMessage()).data.toString(), 'c', 'the next read gets the next message')
})

t.test('a protocol error still delivers the complete messages before it', async (t) => {
  const { conn, peer, cleanup } = await rawPeer({ closeTimeout: 50 })
  t.teardown(cleanup)
  peer.write(Buffer.concat([
    clientFrame({ opcode: TEXT, payload: 'kept' }),
    clientFrame({ opcode: BINARY, payload: 'partial', fin: false }),
    frame({ opcode: 0, payload: 'unmasked' })
  ]))
  t.equal((await conn.readMessage()).data.toString(), 'kept')
  const error = await conn.readMessage().catch((e: unknown) => e)
  t.type(error, ProtocolError)
  t.notOk(error instanceof CloseError, 'not a close error')
})

// ---- Protocol failures ----

const cases: Array<{ label: string, bytes: Buffer, closeCode: number, code: string, options?: object }> = [
  { label: 'an unmasked frame', bytes: frame({ opcode: TEXT, payload: 'plain' }), closeCode: 1002, code: 'ERR_WS_EXPECTED_MASK' },
  { label: 'reserved data opcode 3', bytes: clientFrame({ opcode: 3, payload: 'x' }), closeCode: 1002, code: 'ERR_WS_RESERVED_OPCODE' },
  { label: 'reserved control opcode 11', bytes: clientFrame({ opcode: 11 }), closeCode: 1002, code: 'ERR_WS_RESERVED_OPCODE' },
  { label: 'RSV2 set', bytes: clientFrame({ opcode: BINARY, payload: 'x', rsv2: true }), closeCode: 1002, code: 'ERR_WS_RESERVED_BITS' },
  { label: 'RSV1 without an extension', bytes: clientFrame({ opcode: TEXT, payload: 'x', rsv1: true }), closeCode: 1002, code: 'ERR_WS_UNEXPECTED_RSV1' },
  { label: 'a fragmented ping', bytes: clientFrame({ opcode: PING, payload: 'x', fin: false }), closeCode: 1002, code: 'ERR_WS_FRAGMENTED_CONTROL' },
  { label: 'a ping of 126 bytes', bytes: clientFrame({ opcode: PING, payload: Buffer.alloc(126) }), closeCode: 1002, code: 'ERR_WS_CONTROL_TOO_LONG' },
  { label: 'a continuation without a message', bytes: clientFrame({ opcode: 0, payload: 'x' }), closeCode: 1002, code: 'ERR_WS_UNEXPECTED_CONTINUATION' },
  {
    label: 'a text frame inside a fragmented message',
    bytes: Buffer.concat([clientFrame({ opcode: BINARY, payload: 'a', fin: false }), clientFrame({ opcode: TEXT, payload: 'b' })]),
    closeCode: 1002,
    code: 'ERR_WS_EXPECTED_CONTINUATION'
  },
  { label: 'a 64-bit length with the MSB set', bytes: frameHeader({ opcode: BINARY, length: 2n ** 63n, encoding: 64, mask: true }), closeCode: 1002, code: 'ERR_WS_INVALID_LENGTH' },
  { label: 'a close frame with a 1-byte payload', bytes: clientFrame({ opcode: CLOSE, payload: Buffer.from([0x03]) }), closeCode: 1002, code: 'ERR_WS_INVALID_CLOSE_PAYLOAD' },
  { label: 'close code 1005 on the wire', bytes: clientFrame({ opcode: CLOSE, payload: closePayload(1005) }), closeCode: 1002, code: 'ERR_WS_INVALID_CLOSE_CODE' },
  {
    label: 'a close reason that is not UTF-8',
    bytes: clientFrame({ opcode: CLOSE, payload: Buffer.concat([closePayload(1000), Buffer.from([0xc3, 0x28])]) }),
    closeCode: 1007,
    code: 'ERR_WS_INVALID_UTF8'
  },
  { label: 'invalid UTF-8 text', bytes: clientFrame({ opcode: TEXT, payload: Buffer.from([0x68, 0xc3, 0x28]) }), closeCode: 1007, code: 'ERR_WS_INVALID_UTF8' },
  {
    label: 'invalid UTF-8 in the first fragment',
    bytes: clientFrame({ opcode: TEXT, payload: Buffer.from([0xff]), fin: false }),
    closeCode: 1007,
    code: 'ERR_WS_INVALID_UTF8'
  },
  {
    label: 'a header announcing more than readLimit',
    bytes: frameHeader({ opcode: BINARY, length: 1001, mask: true }),
    closeCode: 1009,
    code: 'ERR_WS_READ_LIMIT',
    options: { readLimit: 1000 }
  },
  {
    label: 'fragments adding up to more than readLimit',
    bytes: Buffer.concat([
      clientFrame({ opcode: BINARY, payload: Buffer.alloc(600), fin: false }),
      frameHeader({ opcode: 0, length: 401, mask: true })
    ]),
    closeCode: 1009,
    code: 'ERR_WS_READ_LIMIT',
    options: { readLimit: 1000 }
  },
  {
    label: 'a frame length beyond 2^53',
    bytes: frameHeader({ opcode: BINARY, length: 2n ** 53n, encoding: 64, mask: true }),
    closeCode: 1009,
    code: 'ERR_WS_READ_LIMIT',
    options: { readLimit: 0 }
  },
  {
    label: 'more fragments than maxFragments',
    bytes: Buffer.concat([0, 1, 2].map((i) => clientFrame({ opcode: i === 0 ? BINARY : 0, payload: 'x', fin: false }))),
    closeCode: 1009,
    code: 'ERR_WS_TOO_MANY_FRAGMENTS',
    options: { maxFragments: 2 }
  }
]

for (const { label, bytes, closeCode, code, options } of cases) {
  t.test(`${label}: close ${closeCode}, TCP ended, reads reject`, async (t) => {
    const { conn, peer, wire, cleanup } = await rawPeer({ closeTimeout: 1000, ...options })
    t.teardown(cleanup)
    const reading = conn.readMessage()
    peer.write(bytes)
    const error = await reading.catch((e: unknown) => e) as ProtocolError
    t.type(error, closeCode === 1009 ? ReadLimitError : ProtocolError)
    t.equal(error.closeCode, closeCode)
    t.equal(error.code, code)
    const close = parseClose(await wire.nextFrame())
    t.equal(close.code, closeCode, `the server sent close ${closeCode}`)
    t.equal(close.reason, error.message, 'with the error message as reason')
    await wire.waitEnd()
    t.ok(wire.ended, 'and ended TCP')
    t.equal(await conn.readMessage().catch((e: unknown) => e), error, 'every later read rejects with the same error')
    await t.rejects(conn.writeMessage(TEXT, 'x'), { name: 'CloseSentError' }, 'writes are refused')
    peer.end()
    await conn.closed
    t.equal(wire.pending, 0, 'nothing after the close frame')
  })
}

t.test('validateUtf8: false lets invalid text through', async (t) => {
  const { conn, peer, cleanup } = await rawPeer({ validateUtf8: false })
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: TEXT, payload: Buffer.from([0xff, 0xfe]) }))
  t.same([...(await conn.readMessage()).data], [0xff, 0xfe])
})

t.test('a message exactly at readLimit passes, with a ping between its fragments', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({ readLimit: 1000 })
  t.teardown(cleanup)
  peer.write(Buffer.concat([
    clientFrame({ opcode: BINARY, payload: Buffer.alloc(500, 1), fin: false }),
    clientFrame({ opcode: PING, payload: 'mid' }),
    clientFrame({ opcode: 0, payload: Buffer.alloc(500, 2) })
  ]))
  t.equal((await conn.readMessage()).data.length, 1000)
  t.equal((await wire.nextFrame()).payload.toString(), 'mid')
})

t.test('setReadLimit changes the limit for the next frames', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({ closeTimeout: 1000 })
  t.teardown(cleanup)
  t.throws(() => { conn.setReadLimit(-1) }, RangeError)
  t.throws(() => { conn.setReadLimit(1.5) }, RangeError)
  conn.setReadLimit(10)
  t.equal(conn.readLimit, 10)
  peer.write(clientFrame({ opcode: TEXT, payload: '0123456789' }))
  t.equal((await conn.readMessage()).data.toString(), '0123456789')
  peer.write(frameHeader({ opcode: TEXT, length: 11, mask: true }))
  await t.rejects(conn.readMessage(), ReadLimitError)
  t.equal(parseClose(await wire.nextFrame()).code, 1009)
})

t.test('a client Conn fails on a masked frame from the server', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({ closeTimeout: 1000 }, false)
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: TEXT, payload: 'masked' }))
  await t.rejects(conn.readMessage(), { name: 'ProtocolError', closeCode: 1002 })
  const close = await wire.nextFrame()
  t.ok(close.maskKey !== undefined, "the client's close frame is masked")
  t.equal(parseClose(close).code, 1002)
})

t.test('close() called as the failure is reported still sends the failure code', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer({ closeTimeout: 1000 })
  t.teardown(cleanup)
  const closed = conn.readMessage().catch(async (error: unknown) => {
    await conn.close(1000, 'application close')
    return error
  })
  peer.write(clientFrame({ opcode: 3 }))
  t.equal(parseClose(await wire.nextFrame()).code, 1002, 'the protocol error wins over the application close')
  await wire.waitEnd()
  peer.end()
  t.type(await closed, ProtocolError)
  t.equal(wire.pending, 0, 'exactly one close frame')
})
