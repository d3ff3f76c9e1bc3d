// The plugin's `compression` option over real TCP: Chromium's offer
// (`permessage-deflate; client_max_window_bits`) from a raw client and from ws (whose default
// offer is the same), route-level overrides, and bad settings refused at declaration.
import t from 'tap'
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import type { Conn } from '../lib/conn/conn.js'
import { fastifyWsconn, type WsconnPluginOptions } from '../lib/plugin/index.js'
import { digest, textOf, transfer, wsPeer } from './helpers/compression-peers.js'
import { compressPayload } from './helpers/deflate.js'
import { listen } from './helpers/plugin.js'
import { WireClient } from './helpers/wire-client.js'
import { WireTap } from './helpers/wire-tap.js'

const CHROMIUM_OFFER = 'permessage-deflate; client_max_window_bits'

async function echo (conn: Conn): Promise<void> {
  for await (const message of conn) await conn.writeMessage(message.type, message.data)
}

async function start (t: { teardown: (fn: () => unknown) => void }, options: WsconnPluginOptions): Promise<{ app: FastifyInstance, tap: WireTap }> {
  const app = Fastify()
  await app.register(fastifyWsconn, options)
  app.get('/echo', { websocket: true }, echo)
  app.get('/plain', { websocket: { compression: false } }, echo)
  app.get('/custom', { websocket: { compression: { serverNoContextTakeover: true, clientMaxWindowBits: 10, threshold: 0 } } }, echo)
  const tap = await WireTap.start(await listen(app))
  t.teardown(async () => {
    await tap.close()
    await app.close()
  })
  return { app, tap }
}

t.test('compression: true answers Chromium\'s offer and compresses both ways', async (t) => {
  const { tap } = await start(t, { compression: true })

  const raw = await WireClient.open(tap.port, '/echo', `Sec-WebSocket-Extensions: ${CHROMIUM_OFFER}\r\n`)
  t.equal(tap.sessionFor('/echo').toClient.extensions, 'permessage-deflate', 'the 101 agrees to permessage-deflate with the defaults')
  const hello = Buffer.from(JSON.stringify({ type: 'hello', text: 'from a browser-like client, long enough to compress' }))
  raw.send({ opcode: 1, rsv: 4, payload: compressPayload(hello) })
  const answer = await raw.next()
  t.equal(answer?.rsv, 4, 'the echo came back compressed')
  t.same(inflateRawSync(Buffer.concat([answer!.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH }), hello, 'and inflates to the message')
  raw.destroy()

  const ws = new WebSocket(`ws://127.0.0.1:${tap.port}/echo`, { perMessageDeflate: { threshold: 0 } })
  const peer = wsPeer(ws)
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const session = tap.sessions.at(-1)!
  t.match(session.toServer.head, /\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n/i, 'ws offered exactly what Chromium offers')
  const messages = Array.from({ length: 20 }, (_, i) => ({ binary: false, data: textOf(200 + i * 50, i), fragmented: i % 5 === 4 }))
  const echoed = await transfer(peer, peer, messages)
  t.same(digest(echoed), digest(messages), 'ws got every message back')
  t.ok(session.toServer.messages().every((m) => m.compressed), 'everything ws sent was compressed')
  t.ok(session.toClient.messages().every((m) => m.compressed), 'everything the route sent back was compressed (above its 32-byte threshold)')
  await peer.close()
})

t.test('route settings replace the plugin\'s', async (t) => {
  const { tap } = await start(t, { compression: true })
  const plain = await WireClient.open(tap.port, '/plain', `Sec-WebSocket-Extensions: ${CHROMIUM_OFFER}\r\n`)
  t.equal(tap.sessionFor('/plain').toClient.extensions, '', 'compression: false on the route: no extension in the 101')
  plain.send({ opcode: 1, rsv: 4, payload: 'x' })
  const refused = await plain.next()
  t.same([refused?.opcode, refused?.payload.readUInt16BE(0)], [8, 1002], 'and RSV1 from the client is a protocol error (1002)')
  plain.destroy()

  const custom = await WireClient.open(tap.port, '/custom', `Sec-WebSocket-Extensions: ${CHROMIUM_OFFER}\r\n`)
  t.equal(tap.sessionFor('/custom').toClient.extensions, 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10',
    'an object on the route: exactly its parameters')
  custom.send({ opcode: 2, rsv: 4, payload: deflateRawSync(Buffer.from('ab'), { finishFlush: constants.Z_SYNC_FLUSH, windowBits: 10 }).subarray(0, -4) })
  const answer = await custom.next()
  t.same([answer?.rsv, answer?.opcode], [4, 2], 'compressed from the first byte (threshold 0)')
  custom.destroy()
})

t.test('bad compression settings are refused when the plugin loads or the route is declared', async (t) => {
  for (const [setting, error] of [['yes', TypeError], [[], TypeError], [{ level: 12 }, RangeError], [{ memLevel: 0 }, RangeError],
    [{ threshold: -1 }, RangeError], [{ idleTimeout: 1.5 }, RangeError], [{ syncLimit: -1 }, RangeError], [{ serverMaxWindowBits: 16 }, RangeError]] as const) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(fastifyWsconn, { compression: setting as never }) }, error, `plugin compression ${JSON.stringify(setting)}`)
    await app.close()
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, {})
  t.throws(() => { app.get('/bad', { websocket: { compression: { clientMaxWindowBits: 7 } } }, echo) }, RangeError, 'a route with a bad window')
})
