// The per-connection compression settings over real TCP, checked on the wire: the size threshold,
// enableWriteCompression, setCompressionLevel, compressionNegotiated; receivers are ws where the
// sender is ours, so an independent inflater reads every message.
import t from 'tap'
import type { Conn } from '../lib/conn/conn.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { BinaryMessage, TextMessage } from '../lib/protocol/constants.js'
import { CloseSentError } from '../lib/protocol/errors.js'
import { Upgrader } from '../lib/upgrader.js'
import { dial } from '../lib/dialer.js'
import { Lab, UpgradeServer, digest, textOf, type Pairing, type TestPeer } from './helpers/compression-peers.js'
import type { FrameLog } from './helpers/wire-tap.js'
import { WireClient } from './helpers/wire-client.js'

/** Resolves with the next `count` messages `peer` receives, as digests. */
async function receive (peer: TestPeer, count: number): Promise<string[]> {
  const out = []
  for (let i = 0; i < count; i++) out.push(await peer.receive())
  return digest(out)
}

/** The RSV1 bit and payload size of each data message that went one way, from `from` on. */
function rsv1Of (log: FrameLog, from = 0): boolean[] {
  return log.messages().slice(from).map((m) => m.compressed)
}

const text = (size: number, seed = size): Buffer => textOf(size, seed)

t.test('messages under the threshold go uncompressed, others compressed (RSV1 on the wire)', async (t) => {
  const lab = await Lab.start(t)
  // Our server (threshold 100) to the ws client.
  const { client, session, serverConn }: Pairing = await lab.wsToUpgrader({}, { compression: { threshold: 100 }, writeBufferSize: 256 })
  const conn = serverConn!
  const sent = [text(99), text(100), text(10), text(100), text(1000), text(99), text(100)]
  const arrived = receive(client, sent.length)
  await conn.writeMessage(TextMessage, sent[0]!)
  await conn.writeMessage(TextMessage, sent[1]!)
  // A streamed message whose whole size is known at close goes by the threshold too.
  let writer = await conn.nextWriter(TextMessage)
  await writer.write(sent[2]!)
  await writer.close()
  writer = await conn.nextWriter(TextMessage)
  await writer.write(sent[3]!.toString())
  await writer.close()
  // One that fills a fragment before it ends is compressed, whatever its size will be.
  writer = await conn.nextWriter(TextMessage)
  await writer.write(sent[4]!)
  await writer.close()
  await conn.writePreparedMessage(new PreparedMessage(TextMessage, sent[5]!))
  await conn.writePreparedMessage(new PreparedMessage(TextMessage, sent[6]!))
  t.same(await arrived, digest(sent.map((data) => ({ binary: false, data }))), 'the ws client got every message')
  t.same(rsv1Of(session.toClient), [false, true, false, true, true, false, true], 'RSV1 set from 100 bytes on, and on every fragmented message')
  await client.close()
})

t.test('writes started together go out in call order, compressed or not', async (t) => {
  const lab = await Lab.start(t)
  const { client, session, serverConn } = await lab.wsToUpgrader({}, { compression: { threshold: 100 } })
  const conn = serverConn!
  const big = { text: text(5000).toString() }
  const small = new PreparedMessage(TextMessage, 'a small prepared message')
  const arrived = receive(client, 4)
  // The first is still compressing while the others are written: they queue behind it.
  await Promise.all([
    conn.writeMessage(TextMessage, big.text),
    conn.writeMessage(TextMessage, 'small, sent as it is'),
    conn.writePreparedMessage(small),
    conn.writeJSON(big)
  ])
  t.same(await arrived, digest(['' + big.text, 'small, sent as it is', small.data.toString(), JSON.stringify(big)].map((s) => ({ binary: false, data: Buffer.from(s) }))), 'in order')
  t.same(rsv1Of(session.toClient), [true, false, false, true], 'compressed by size')
  const closing = conn.close()
  await t.rejects(conn.writePreparedMessage(small), CloseSentError, 'a prepared message after close is refused')
  await t.rejects(conn.writeMessage(TextMessage, big.text), CloseSentError, 'and so is a message to compress')
  await closing
})

t.test('the default threshold: 32 bytes with context takeover, 1024 without', async (t) => {
  const lab = await Lab.start(t)
  for (const [noContextTakeover, threshold] of [[false, 32], [true, 1024]] as const) {
    // Our client to ws's server, which reads what we send with its own inflater.
    const { client, server, session } = await lab.dialerToWs({ compression: { clientNoContextTakeover: noContextTakeover } }, { threshold: 0 })
    const sent = [text(threshold - 1), text(threshold), text(threshold - 1, 9), text(threshold + 1)]
    const arrived = receive(server, sent.length)
    for (const data of sent) await client.send({ binary: false, data, fragmented: false })
    t.same(await arrived, digest(sent.map((data) => ({ binary: false, data }))), `ws got every message (threshold ${threshold})`)
    t.same(rsv1Of(session.toServer), [false, true, false, true], `compressed from ${threshold} bytes on`)
    await client.close()
  }
})

t.test('enableWriteCompression(false) sends uncompressed until turned back on', async (t) => {
  const lab = await Lab.start(t)
  const { client, session, serverConn } = await lab.wsToUpgrader({}, { compression: true, writeBufferSize: 1024 })
  const conn = serverConn!
  const data = text(4096)
  const arrived = receive(client, 7)
  await conn.writeMessage(TextMessage, data)
  conn.enableWriteCompression(false)
  await conn.writeMessage(TextMessage, data)
  const writer = await conn.nextWriter(BinaryMessage)
  await writer.write(data)
  await writer.close()
  await conn.writePreparedMessage(new PreparedMessage(TextMessage, data))
  conn.enableWriteCompression(true)
  await conn.writeMessage(TextMessage, data)
  await conn.writePreparedMessage(new PreparedMessage(BinaryMessage, data))
  // A prepared message is compressed apart from this connection's history, which therefore starts anew.
  await conn.writeMessage(TextMessage, data)
  t.same(await arrived, digest([false, false, true, false, false, true, false].map((binary) => ({ binary, data }))), 'ws got all seven')
  t.same(rsv1Of(session.toClient), [true, false, false, false, true, true, true], 'RSV1 clear exactly while compression was off')
  const sizes = session.toClient.messages().map((m) => m.payload.length)
  t.ok(sizes[4]! * 5 < sizes[0]!, `the context survived the uncompressed messages: copy 5 refers back to copy 1 (${sizes[4]} against ${sizes[0]} bytes)`)
  t.equal(sizes[6], sizes[0], 'after the prepared message the history started anew: copy 7 costs what copy 1 did')
  t.equal(sizes[1], 4096, 'uncompressed means the payload as it is')
  await client.close()
})

t.test('setCompressionLevel: bad levels throw RangeError, level 0 stores and level 9 shrinks', async (t) => {
  const lab = await Lab.start(t)
  const { client, session, serverConn } = await lab.wsToUpgrader({}, { compression: true })
  const conn = serverConn!
  for (const bad of [-1, 10, 1.5, Number.NaN, '3' as unknown as number]) {
    t.throws(() => { conn.setCompressionLevel(bad) }, RangeError, `level ${String(bad)} is refused`)
  }
  const first = text(64 * 1024, 1)
  const second = text(64 * 1024, 2)
  const third = text(64 * 1024, 3)
  const arrived = receive(client, 3)
  conn.setCompressionLevel(0)
  await conn.writeMessage(TextMessage, first)
  conn.setCompressionLevel(9)
  await conn.writeMessage(TextMessage, second)
  conn.setCompressionLevel(1)
  await conn.writeMessage(TextMessage, third)
  t.same(await arrived, digest([first, second, third].map((data) => ({ binary: false, data }))), 'ws inflated all three')
  const [stored, best, fast] = session.toClient.messages().map((m) => m.payload.length)
  t.ok(stored! >= first.length, `level 0 stores: ${stored} bytes for ${first.length}`)
  t.ok(best! * 3 < second.length, `level 9 compresses: ${best} bytes`)
  t.ok(best! < fast!, `level 9 beats level 1 (${best} < ${fast} bytes)`)
  t.comment(`64 KiB of chat JSON: level 0 ${stored} bytes, level 1 ${fast}, level 9 ${best}`)
  await client.close()
})

t.test('compressionNegotiated, and connections without compression', async (t) => {
  const lab = await Lab.start(t)
  const on = await lab.wsToUpgrader({}, { compression: true })
  t.equal(on.serverConn!.compressionNegotiated, true, 'negotiated with a ws client that offers it')
  t.equal(on.serverConn!.extensions, 'permessage-deflate', 'and Conn.extensions says so')
  await on.client.close()

  const notOffered = await lab.wsToUpgrader(false, { compression: true })
  t.equal(notOffered.serverConn!.compressionNegotiated, false, 'not when the client offers nothing')
  t.equal(notOffered.session.toClient.extensions, '', 'and the 101 has no Sec-WebSocket-Extensions')
  const off = notOffered.serverConn!
  off.enableWriteCompression(true)
  t.throws(() => { off.setCompressionLevel(10) }, RangeError, 'setCompressionLevel still checks the level')
  off.setCompressionLevel(9)
  const arrived = receive(notOffered.client, 2)
  await off.writeMessage(TextMessage, text(4096))
  await off.writePreparedMessage(new PreparedMessage(TextMessage, text(4096)))
  await arrived
  t.same(rsv1Of(notOffered.session.toClient), [false, false], 'and messages go uncompressed')
  await notOffered.client.close()

  const declined = await lab.wsToUpgrader({}, {})
  t.equal(declined.serverConn!.compressionNegotiated, false, 'not when the server has compression off')
  await declined.client.close()

  const dialed = await lab.dialerToUpgrader({ compression: true }, {})
  t.equal(dialed.clientConn!.compressionNegotiated, false, 'a Dialer offering it to a server without it goes on uncompressed')
  t.equal(dialed.clientConn!.extensions, '', 'with no extensions')
  await dialed.client.close()
})

t.test('an invalid offer is declined and the connection goes on uncompressed', async (t) => {
  const server = await UpgradeServer.start()
  t.teardown(() => server.close())
  const conns: Conn[] = []
  const upgrader = new Upgrader({ compression: true })
  server.route('/', (req, socket, head) => { upgrader.upgrade(req, socket, head).then((conn) => { conns.push(conn) }, () => {}) })
  t.teardown(() => { for (const conn of conns) conn.terminate() })
  const client = await WireClient.open(server.port, '/', 'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7, permessage-deflate; foo\r\n')
  while (conns.length === 0) await new Promise((resolve) => setImmediate(resolve))
  t.equal(conns[0]!.compressionNegotiated, false, 'no offer was acceptable')
  t.equal(conns[0]!.extensions, '', 'nothing agreed')
  client.destroy()
  const conn = await dial(`ws://127.0.0.1:${server.port}/`, { compression: { serverMaxWindowBits: 8, clientNoContextTakeover: true } })
  t.teardown(() => { conn.terminate() })
  t.equal(conn.extensions, 'permessage-deflate; client_no_context_takeover; server_max_window_bits=8', 'a valid offer after it is answered exactly')
  t.equal(conn.compressionNegotiated, true, 'and used')
})
