// Our Conn and a `ws` WebSocket behind one small interface, so the same exchange runs between any
// two of them, and a lab that connects the three pairings (ws client → our Upgrader, our Dialer →
// our Upgrader, our Dialer → ws's server) through a WireTap.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import WebSocket, { WebSocketServer, type PerMessageDeflateOptions } from 'ws'
import type { Conn } from '../../lib/conn/conn.js'
import { dial, type DialOptions } from '../../lib/dialer.js'
import { Upgrader, type UpgraderOptions } from '../../lib/upgrader.js'
import { prng } from './frames.js'
import { WireTap, parseAgreed, type Agreed, type TapSession } from './wire-tap.js'

/** An HTTP server whose upgrades go to the handler registered for the request's path. */
export class UpgradeServer {
  readonly #server: HttpServer
  readonly #routes = new Map<string, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>()

  private constructor (server: HttpServer) {
    this.#server = server
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const route = this.#routes.get(req.url ?? '')
      if (route === undefined) socket.destroy()
      else route(req, socket, head)
    })
  }

  static async start (): Promise<UpgradeServer> {
    const server = createHttpServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return new UpgradeServer(server)
  }

  get port (): number {
    return (this.#server.address() as AddressInfo).port
  }

  route (path: string, handler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): void {
    this.#routes.set(path, handler)
  }

  async close (): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** One message of a test exchange. */
export interface TestMessage {
  binary: boolean
  data: Buffer
  /** Sent in several frames, with a ping between them. */
  fragmented: boolean
}

/** A received message. */
export interface Received {
  binary: boolean
  data: Buffer
}

/** Our Conn or a ws WebSocket, seen the same way. */
export interface TestPeer {
  /** The permessage-deflate parameters this end works with. */
  agreed (): Agreed
  send (message: TestMessage): Promise<void>
  receive (): Promise<Received>
  /** Runs the closing handshake and resolves when the connection is gone. */
  close (): Promise<void>
}

/** The three pieces a fragmented message is written in (the last one never empty). */
export function piecesOf (data: Buffer): Buffer[] {
  const a = Math.floor(data.length / 3)
  const b = Math.floor((2 * data.length) / 3)
  return [data.subarray(0, a), data.subarray(a, b), data.subarray(b)]
}

/** Our Conn as a TestPeer; fragmented messages go through nextWriter with a ping after each piece. */
export function connPeer (conn: Conn): TestPeer {
  return {
    agreed: () => parseAgreed(conn.extensions),
    async send (message) {
      const type = message.binary ? 2 : 1
      if (!message.fragmented) return await conn.writeMessage(type, message.data)
      const writer = await conn.nextWriter(type)
      for (const piece of piecesOf(message.data)) {
        await writer.write(piece)
        await conn.writeControl(9, 'between')
      }
      await writer.close()
    },
    async receive () {
      const message = await conn.readMessage()
      return { binary: message.type === 2, data: message.data }
    },
    async close () {
      await conn.close(1000)
    }
  }
}

/** A ws WebSocket as a TestPeer; fragmented messages use `send(piece, { fin: false })` and a ping in between. */
export function wsPeer (ws: WebSocket): TestPeer {
  const inbox: Received[] = []
  const waiting: Array<{ resolve: (message: Received) => void, reject: (error: Error) => void }> = []
  let failure: Error | undefined
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const message = { binary: isBinary, data }
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter.resolve(message)
    else inbox.push(message)
  })
  ws.on('close', (code: number) => {
    failure = new Error(`ws closed with ${code}`)
    for (const waiter of waiting.splice(0)) waiter.reject(failure)
  })
  const sendPiece = (data: Buffer, binary: boolean, fin: boolean): Promise<void> => new Promise((resolve, reject) => {
    ws.send(data, { binary, fin }, (error) => { if (error == null) resolve(); else reject(error) })
  })
  return {
    agreed () {
      // ws's own view: the parameters its PerMessageDeflate runs with.
      const params = (ws as unknown as { _extensions: Record<string, { params: Record<string, unknown> } | undefined> })._extensions['permessage-deflate']?.params
      if (params === undefined) throw new Error('ws did not negotiate permessage-deflate')
      return {
        serverNoContextTakeover: params.server_no_context_takeover === true,
        clientNoContextTakeover: params.client_no_context_takeover === true,
        serverMaxWindowBits: typeof params.server_max_window_bits === 'number' ? params.server_max_window_bits : 15,
        clientMaxWindowBits: typeof params.client_max_window_bits === 'number' ? params.client_max_window_bits : 15
      }
    },
    async send (message) {
      if (!message.fragmented || message.data.length === 0) return await sendPiece(message.data, message.binary, true)
      // Every piece is handed to ws at once, so several messages can be sent without waiting.
      const pieces = piecesOf(message.data)
      const sent = pieces.map((piece, index) => {
        const last = index === pieces.length - 1
        const done = sendPiece(piece, message.binary, last)
        if (!last) ws.ping('between')
        return done
      })
      await Promise.all(sent)
    },
    receive () {
      const message = inbox.shift()
      if (message !== undefined) return Promise.resolve(message)
      if (failure !== undefined) return Promise.reject(failure)
      return new Promise((resolve, reject) => { waiting.push({ resolve, reject }) })
    },
    async close () {
      if (ws.readyState === ws.CLOSED) return
      const closed = once(ws, 'close')
      ws.close(1000)
      await closed
    }
  }
}

/**
 * `size` bytes of chat-like JSON text (ASCII, so any cut is valid UTF-8): it repeats at every
 * distance, so it shows both context takeover and the window size at work.
 */
export function textOf (size: number, seed: number): Buffer {
  const random = prng(seed)
  const words = ['hello', 'world', 'message', 'typing', 'room', 'lobby', 'ok', 'see you', 'deflate', 'window']
  let text = ''
  while (text.length < size) {
    text += JSON.stringify({ id: Math.floor(random() * 100000), user: `user${Math.floor(random() * 40)}`, text: words[Math.floor(random() * words.length)]!.repeat(1 + Math.floor(random() * 3)) }) + '\n'
  }
  return Buffer.from(text.slice(0, size))
}

/** `size` bytes of binary: runs of repeated bytes mixed with noise. */
export function binaryOf (size: number, seed: number): Buffer {
  const random = prng(seed)
  const out = Buffer.alloc(size)
  for (let i = 0; i < size;) {
    const run = 1 + Math.floor(random() * 24)
    const value = Math.floor(random() * 256)
    const repeat = random() < 0.7
    for (let j = 0; j < run && i < size; j++, i++) out[i] = repeat ? value : Math.floor(random() * 256)
  }
  return out
}

/**
 * Sends every message from `from` to `to` and resolves with what arrived, in order. All sends
 * start at once (both peers keep call order), `pipelined` false waits for each instead.
 */
export async function transfer (from: TestPeer, to: TestPeer, messages: TestMessage[], pipelined = true): Promise<Received[]> {
  const received = Promise.all(messages.map(() => to.receive()))
  if (pipelined) await Promise.all(messages.map((message) => from.send(message)))
  else for (const message of messages) await from.send(message)
  return await received
}

/** A short, comparable account of messages: type, length and a hash of the bytes. */
export function digest (messages: Array<{ binary: boolean, data: Buffer }>): string[] {
  return messages.map(({ binary, data }) => `${binary ? 'binary' : 'text'}:${data.length}:${createHash('sha1').update(data).digest('hex').slice(0, 12)}`)
}

/** Two connected peers, the frames between them, and how to end it. */
export interface Pairing {
  client: TestPeer
  server: TestPeer
  session: TapSession
  /** Our Conns in the pairing (to inspect or to configure). */
  clientConn: Conn | undefined
  serverConn: Conn | undefined
}

/** A server and a WireTap in front of it, making connections of the three pairings. */
export class Lab {
  readonly server: UpgradeServer
  readonly tap: WireTap
  readonly #waiting = new Map<string, { resolve: (peer: { peer: TestPeer, conn: Conn | undefined }) => void, reject: (error: unknown) => void }>()
  readonly #conns: Conn[] = []
  readonly #sockets: WebSocket[] = []
  #paths = 0

  private constructor (server: UpgradeServer, tap: WireTap) {
    this.server = server
    this.tap = tap
  }

  /** Starts a lab that `t` tears down. */
  static async start (t: { teardown: (fn: () => unknown) => void }): Promise<Lab> {
    const server = await UpgradeServer.start()
    const tap = await WireTap.start(server.port)
    const lab = new Lab(server, tap)
    t.teardown(async () => {
      for (const conn of lab.#conns) conn.terminate()
      for (const ws of lab.#sockets) ws.terminate()
      await tap.close()
      await server.close()
    })
    return lab
  }

  /** The ws client with `clientOptions` against our Upgrader. */
  async wsToUpgrader (clientOptions: PerMessageDeflateOptions | false, upgraderOptions: UpgraderOptions): Promise<Pairing> {
    const path = this.#serveUpgrader(upgraderOptions)
    const ws = new WebSocket(`ws://127.0.0.1:${this.tap.port}${path}`, { perMessageDeflate: clientOptions })
    this.#sockets.push(ws)
    const client = wsPeer(ws)
    const server = this.#serverPeer(path)
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    const { peer, conn } = await server
    return { client, server: peer, session: this.tap.sessionFor(path), clientConn: undefined, serverConn: conn }
  }

  /** Our Dialer with `dialOptions` against our Upgrader. */
  async dialerToUpgrader (dialOptions: DialOptions, upgraderOptions: UpgraderOptions): Promise<Pairing> {
    const path = this.#serveUpgrader(upgraderOptions)
    const server = this.#serverPeer(path)
    const conn = await dial(`ws://127.0.0.1:${this.tap.port}${path}`, dialOptions)
    this.#conns.push(conn)
    const { peer, conn: serverConn } = await server
    return { client: connPeer(conn), server: peer, session: this.tap.sessionFor(path), clientConn: conn, serverConn }
  }

  /** Our Dialer with `dialOptions` against ws's WebSocketServer with `serverOptions`. */
  async dialerToWs (dialOptions: DialOptions, serverOptions: PerMessageDeflateOptions): Promise<Pairing> {
    const path = `/${this.#paths++}`
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: serverOptions })
    this.server.route(path, (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        this.#sockets.push(ws)
        this.#waiting.get(path)?.resolve({ peer: wsPeer(ws), conn: undefined })
      })
    })
    const server = this.#serverPeer(path)
    const conn = await dial(`ws://127.0.0.1:${this.tap.port}${path}`, dialOptions)
    this.#conns.push(conn)
    const { peer } = await server
    return { client: connPeer(conn), server: peer, session: this.tap.sessionFor(path), clientConn: conn, serverConn: undefined }
  }

  #serveUpgrader (options: UpgraderOptions): string {
    const path = `/${this.#paths++}`
    const upgrader = new Upgrader(options)
    this.server.route(path, (req, socket, head) => {
      upgrader.upgrade(req, socket, head).then((conn) => {
        this.#conns.push(conn)
        this.#waiting.get(path)?.resolve({ peer: connPeer(conn), conn })
      }, (error: unknown) => { this.#waiting.get(path)?.reject(error) })
    })
    return path
  }

  #serverPeer (path: string): Promise<{ peer: TestPeer, conn: Conn | undefined }> {
    return new Promise((resolve, reject) => { this.#waiting.set(path, { resolve, reject }) })
  }
}
