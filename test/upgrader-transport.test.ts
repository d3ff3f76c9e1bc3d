// The Upgrader on streams that are not net.Sockets, whose events come at other moments than a TCP
// socket's: a transport whose writes settle through promises (adapters over promise-based I/O)
// reports a failed write before 'error' or 'close', and a generic Duplex announces its destruction
// on the next tick rather than after the handle closes. No timing makes an upgrade crash or hang.
import t from 'tap'
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { Upgrader } from '../lib/upgrader.js'
import { HandshakeError } from '../lib/protocol/errors.js'

/** A duplex whose every write is handed to `write` and completes when its promise settles. */
function promiseTransport (write: (chunk: Buffer) => Promise<void>): Duplex {
  return new Duplex({
    read () {},
    write (chunk: Buffer, _encoding, callback) {
      write(chunk).then(() => callback(), callback)
    }
  })
}

/** A valid upgrade request, as Node's HTTP parser would deliver it. */
function upgradeRequest (): IncomingMessage {
  const req = new IncomingMessage(new Socket())
  req.method = 'GET'
  req.url = '/'
  req.headers = {
    host: 'localhost',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13'
  }
  return req
}

t.test('an upgrade over a promise-based transport writes the 101 and gives a Conn', async (t) => {
  const written: Buffer[] = []
  const transport = promiseTransport(async (chunk) => { written.push(chunk) })
  const conn = await new Upgrader().upgrade(upgradeRequest(), transport, Buffer.alloc(0))
  t.teardown(() => conn.terminate())
  const response = Buffer.concat(written).toString('latin1')
  t.match(response, /^HTTP\/1\.1 101 Switching Protocols\r\n/)
  t.match(response, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/)
  t.equal(conn.isServer, true)
})

t.test('a failed write of the 101 rejects with status 0 and destroys the transport', async (t) => {
  const broken = new Error('transport closed')
  const transport = promiseTransport(async () => { throw broken })
  const closed = new Promise((resolve) => transport.once('close', resolve))
  const error = await new Upgrader().upgrade(upgradeRequest(), transport, Buffer.alloc(0)).catch((err: unknown) => err)
  t.ok(error instanceof HandshakeError, 'rejects with a HandshakeError')
  t.equal((error as HandshakeError).status, 0, 'status 0: no HTTP response could be sent')
  t.match((error as HandshakeError).message, /upgrade failed: transport closed/)
  t.equal((error as HandshakeError).cause, broken, 'the write error is the cause')
  // The stream emits 'error' (then 'close') only now, with no listener of ours: the upgrade's
  // must absorb it, or the process would crash here.
  await closed
  t.equal(transport.destroyed, true)
  t.equal(transport.errored, broken)
})

t.test('a transport closed just as an async checkOrigin allows the request', async (t) => {
  const transport = new Duplex({ read () {}, write (_chunk, _encoding, callback) { callback() } })
  const upgrader = new Upgrader({
    // Resolve first, then destroy: the 'close' (next tick) fails the attempt before the allowed
    // result is acted on, and the 101 is then written to a destroyed stream. That write's
    // rejection must be handled, or the process dies of an unhandled rejection.
    checkOrigin: () => new Promise((resolve) => process.nextTick(() => { resolve(true); transport.destroy() }))
  })
  const error = await upgrader.upgrade(upgradeRequest(), transport, Buffer.alloc(0)).catch((err: unknown) => err)
  t.ok(error instanceof HandshakeError)
  t.equal((error as HandshakeError).status, 0)
  t.match((error as HandshakeError).message, /connection closed during handshake/)
  // Let the failed write report itself; an unhandled rejection would fail this test.
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(transport.destroyed, true)
})
