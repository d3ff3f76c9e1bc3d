// Nothing received after a compressed message that fails to inflate is acted on, in either role:
// a bad message followed in the same burst by a ping and another message fails the connection
// with 1007 and no pong, and nothing after it is delivered, whether the inflation runs on the
// event loop (small pieces) or on the thread pool (syncLimit 0).
import t from 'tap'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { constants, deflateRawSync } from 'node:zlib'
import type { Conn } from '../lib/conn/conn.js'
import { dial } from '../lib/dialer.js'
import { computeAcceptKey } from '../lib/handshake.js'
import { Upgrader } from '../lib/upgrader.js'
import { compressPayload } from './helpers/deflate.js'
import { UpgradeServer } from './helpers/compression-peers.js'
import { frame } from './helpers/frames.js'
import { WireReader, parseClose, type WireFrame } from './helpers/raw.js'

const history = Buffer.from('words the receiver never saw, words the receiver never saw, words the receiver never saw')
/** Compressed with a history the receiver lacks: its back-references reach before the start of the window. */
function tooFarBack (): Buffer {
  const withHistory = deflateRawSync(Buffer.concat([history, history]), { finishFlush: constants.Z_SYNC_FLUSH, dictionary: history })
  return withHistory.subarray(0, -4)
}

const BAD_MESSAGES: Array<{ name: string, opcode: number, payload: Buffer }> = [
  // BFINAL 0, BTYPE 11.
  { name: 'a reserved block type', opcode: 2, payload: Buffer.from([0x06, 0x00]) },
  // A stored block (BTYPE 00) whose NLEN is not the complement of LEN.
  { name: 'a stored block whose LEN and NLEN disagree', opcode: 2, payload: Buffer.from([0x00, 0x05, 0x00, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64, 0x65]) },
  { name: 'a distance too far back', opcode: 2, payload: tooFarBack() },
  { name: 'text that inflates to invalid UTF-8', opcode: 1, payload: compressPayload(Buffer.from([0x68, 0x69, 0xff, 0xfe])) }
]

const PATHS = [
  { name: 'event loop', compression: { syncLimit: 8192 } },
  { name: 'thread pool', compression: { syncLimit: 0 } }
]

/** The burst: the bad message, a ping and a good message, in one write. */
function burst (bad: { opcode: number, payload: Buffer }, mask: boolean): Buffer {
  return Buffer.concat([
    frame({ opcode: bad.opcode, rsv1: true, payload: bad.payload, mask }),
    frame({ opcode: 9, payload: 'are you there', mask }),
    frame({ opcode: 1, rsv1: true, payload: compressPayload(Buffer.from('after the bad one')), mask })
  ])
}

/** Every frame until the close frame (included) or the end of TCP. */
async function framesUntilClose (wire: WireReader): Promise<WireFrame[]> {
  const frames: WireFrame[] = []
  for (;;) {
    let next: WireFrame
    try {
      next = await wire.nextFrame()
    } catch {
      return frames
    }
    frames.push(next)
    if (next.opcode === 8) return frames
  }
}

/** Reads until the connection fails; the messages delivered before that. */
async function delivered (conn: Conn): Promise<string[]> {
  const messages: string[] = []
  for (;;) {
    try {
      messages.push((await conn.readMessage()).data.toString())
    } catch {
      return messages
    }
  }
}

for (const path of PATHS) {
  t.test(`server role, inflation on the ${path.name}`, async (t) => {
    const http = await UpgradeServer.start()
    const upgrader = new Upgrader({ compression: path.compression })
    const conns: Conn[] = []
    http.route('/', (req, socket, head) => { upgrader.upgrade(req, socket, head).then((conn) => { conns.push(conn) }, () => {}) })
    t.teardown(async () => {
      for (const conn of conns) conn.terminate()
      await http.close()
    })
    for (const bad of BAD_MESSAGES) {
      const socket = await openRaw(http.port)
      const wire = new WireReader(socket)
      socket.resume()
      while (conns.length === 0) await new Promise((resolve) => setImmediate(resolve))
      const conn = conns.shift()!
      const reading = delivered(conn)
      socket.write(burst(bad, true))
      const frames = await framesUntilClose(wire)
      t.same(frames.map((f) => f.opcode), [8], `${bad.name}: a close frame and nothing before it (no pong)`)
      t.equal(parseClose(frames.at(-1)!).code, 1007, `${bad.name}: with 1007`)
      t.same(await reading, [], `${bad.name}: nothing after the bad message was delivered`)
      socket.destroy()
    }
  })

  t.test(`client role (Dialer), inflation on the ${path.name}`, async (t) => {
    const server = createServer()
    const sockets: Socket[] = []
    let onUpgrade: ((socket: Socket) => void) | undefined
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      sockets.push(socket)
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${computeAcceptKey(String(req.headers['sec-websocket-key']))}\r\n` +
        'Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n')
      onUpgrade?.(socket)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => {
      for (const socket of sockets) socket.destroy()
      server.close()
    })
    const port = (server.address() as AddressInfo).port
    for (const bad of BAD_MESSAGES) {
      const upgraded = new Promise<Socket>((resolve) => { onUpgrade = resolve })
      const conn = await dial(`ws://127.0.0.1:${port}/`, { compression: path.compression })
      const socket = await upgraded
      const wire = new WireReader(socket)
      const reading = delivered(conn)
      socket.write(burst(bad, false))
      const frames = await framesUntilClose(wire)
      t.same(frames.map((f) => f.opcode), [8], `${bad.name}: a close frame and nothing before it (no pong)`)
      t.equal(parseClose(frames.at(-1)!).code, 1007, `${bad.name}: with 1007`)
      t.same(await reading, [], `${bad.name}: nothing after the bad message was delivered`)
      conn.terminate()
    }
  })
}

/** A raw client socket that offered permessage-deflate and got its 101; what followed the response is unread. */
async function openRaw (port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n')
  let head = Buffer.alloc(0)
  for (;;) {
    const [chunk] = await once(socket, 'data') as [Buffer]
    head = Buffer.concat([head, chunk])
    const end = head.indexOf('\r\n\r\n')
    if (end === -1) continue
    if (!head.subarray(0, 12).toString().includes('101')) throw new Error(`refused: ${head.toString()}`)
    socket.pause()
    if (head.length > end + 4) socket.unshift(head.subarray(end + 4))
    return socket
  }
}
