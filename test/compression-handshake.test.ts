// The compression part of the opening handshake over real TCP: what our Upgrader answers to the ws
// client's offers, what our Dialer does with every kind of server answer (from a hand-written
// server), and compression settings refused up front.
import t from 'tap'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { Dialer, dial } from '../lib/dialer.js'
import { HandshakeError } from '../lib/protocol/errors.js'
import { Upgrader } from '../lib/upgrader.js'
import { Lab } from './helpers/compression-peers.js'

/** A server that answers every upgrade with a valid 101 carrying `extensions` (none when undefined). */
async function answering (t: { teardown: (fn: () => unknown) => void }, extensions: string | undefined): Promise<{ url: string, offers: string[] }> {
  const offers: string[] = []
  const server = createServer()
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    offers.push(String(req.headers['sec-websocket-extensions']))
    const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n` +
      (extensions === undefined ? '' : `Sec-WebSocket-Extensions: ${extensions}\r\n`) + '\r\n')
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, offers }
}

t.test('our Upgrader answers the ws client as RFC 7692 7.1 requires (ws fails the connection on some violations)', async (t) => {
  const lab = await Lab.start(t)
  const cases: Array<[name: string, wsOptions: object, compression: object, response: string]> = [
    // 7.1.2.1: an offer with server_max_window_bits is accepted by naming it, even at 15.
    ['server_max_window_bits=15 offered', { serverMaxWindowBits: 15 }, {}, 'permessage-deflate; server_max_window_bits=15'],
    ['server_max_window_bits=12 offered, 10 allowed', { serverMaxWindowBits: 12 }, { serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=10'],
    ['server_max_window_bits=9 offered, 12 allowed', { serverMaxWindowBits: 9 }, { serverMaxWindowBits: 12 }, 'permessage-deflate; server_max_window_bits=9'],
    // 7.1.1.1: server_no_context_takeover offered must be in the response.
    ['server_no_context_takeover offered', { serverNoContextTakeover: true }, {}, 'permessage-deflate; server_no_context_takeover'],
    // 7.1.2.2: no client_max_window_bits in the offer, none in the response (ws fails the connection otherwise).
    ['client_max_window_bits not offered', { clientMaxWindowBits: false }, { clientMaxWindowBits: 10 }, 'permessage-deflate'],
    // 7.1.2.2: never more than the client's own value (ws fails the connection otherwise).
    ['client_max_window_bits=10 offered, 12 allowed', { clientMaxWindowBits: 10 }, { clientMaxWindowBits: 12 }, 'permessage-deflate; client_max_window_bits=10'],
    ['client_max_window_bits offered bare, 11 required', {}, { clientMaxWindowBits: 11 }, 'permessage-deflate; client_max_window_bits=11']
  ]
  for (const [name, wsOptions, compression, response] of cases) {
    const { session, client } = await lab.wsToUpgrader(wsOptions, { compression })
    t.equal(session.toClient.extensions, response, `${name}: the ws client accepted ${response}`)
    await client.close()
  }
})

t.test('the Dialer refuses answers outside its offer', async (t) => {
  const refused: Array<[string, object | boolean | undefined, string, RegExp]> = [
    ['extensions when none were offered', undefined, 'permessage-deflate', /none were offered/],
    ['another extension', true, 'x-webkit-deflate-frame', /bad permessage-deflate answer: the server chose extension "x-webkit-deflate-frame"/],
    ['two answers', true, 'permessage-deflate, permessage-deflate', /bad permessage-deflate answer: the server chose 2 extensions/],
    ['client_max_window_bits without a value', true, 'permessage-deflate; client_max_window_bits', /without a value/],
    ['an unknown parameter', true, 'permessage-deflate; foo=1', /unknown, repeated or invalid/],
    ['a larger window than asked', { serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=12', /more than the 10 requested/],
    ['no server_max_window_bits when it was asked', { serverMaxWindowBits: 10 }, 'permessage-deflate', /did not grant server_max_window_bits/],
    ['server_max_window_bits without a value', true, 'permessage-deflate; server_max_window_bits', /unknown, repeated or invalid/],
    ['a window out of range', true, 'permessage-deflate; client_max_window_bits=16', /unknown, repeated or invalid/],
    ['a repeated parameter', true, 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', /unknown, repeated or invalid/],
    ['a larger client window than offered', { clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=11', /11 is more than the 10 offered/],
    ['server_no_context_takeover not granted', { serverNoContextTakeover: true }, 'permessage-deflate', /did not grant server_no_context_takeover/]
  ]
  for (const [name, compression, answer, reason] of refused) {
    const { url } = await answering(t, answer)
    const error = await dial(url, { compression: compression as never }).then(() => undefined, (e: unknown) => e)
    t.ok(error instanceof HandshakeError && reason.test(error.message), `${name}: ${(error as Error).message}`)
  }
})

t.test('the Dialer goes on uncompressed when the server ignores the offer', async (t) => {
  const { url, offers } = await answering(t, undefined)
  const conn = await dial(url, { compression: { clientMaxWindowBits: 12, serverNoContextTakeover: false } })
  t.teardown(() => { conn.terminate() })
  t.same(offers, ['permessage-deflate; client_max_window_bits=12'], 'it offered what it was told')
  t.equal(conn.compressionNegotiated, false, 'no compression')
  t.equal(conn.extensions, '', 'no extensions')
})

t.test('the Dialer accepts a server that shrinks its window or resets its context', async (t) => {
  const { url, offers } = await answering(t, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9')
  const dialer = new Dialer({ compression: true })
  const conn = await dialer.dial(url)
  t.teardown(() => { conn.terminate() })
  t.same(offers, ['permessage-deflate; client_max_window_bits'], 'the default offer')
  t.equal(conn.compressionNegotiated, true, 'compression on')
})

t.test('bad compression settings are refused before any connection', async (t) => {
  t.throws(() => new Dialer({ compression: { level: 10 } }), RangeError, 'a Dialer with level 10')
  t.throws(() => new Dialer({ compression: 'yes' as never }), TypeError, 'a Dialer with a string')
  await t.rejects(dial('ws://127.0.0.1:9/', { compression: { clientMaxWindowBits: 16 } }), RangeError, 'a dial with window bits 16')
  await t.rejects(dial('ws://127.0.0.1:9/', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } }), TypeError, 'the extensions header set by hand')
  t.throws(() => new Upgrader({ compression: { serverMaxWindowBits: 7 } }), RangeError, 'an Upgrader with window bits 7')
  t.throws(() => new Upgrader({ compression: { threshold: -1 } }), RangeError, 'an Upgrader with a negative threshold')
  t.throws(() => new Upgrader({ compression: null as never }), TypeError, 'an Upgrader with null')
})
