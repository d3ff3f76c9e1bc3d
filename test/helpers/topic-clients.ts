// `ws` clients that record every message with its type, for the topic and slow-consumer tests.
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import type { Conn } from '../../lib/conn/conn.js'
import { Upgrader, type UpgraderOptions } from '../../lib/upgrader.js'

export interface Received { binary: boolean, data: Buffer }

/** A `ws` client and everything it received, in order. */
export class RecordingClient {
  readonly ws: WebSocket
  readonly received: Received[] = []
  #waiters: Array<{ count: number, resolve: () => void }> = []

  constructor (ws: WebSocket) {
    this.ws = ws
    // Tests end connections abruptly; the close is what they check, not the error.
    ws.on('error', () => {})
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.received.push({ binary: isBinary, data })
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.received.length < waiter.count) return true
        waiter.resolve()
        return false
      })
    })
  }

  /** Resolves once `count` messages in all have arrived. */
  waitFor (count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve()
    return new Promise((resolve) => { this.#waiters.push({ count, resolve }) })
  }

  texts (): string[] {
    return this.received.map((message) => message.data.toString())
  }
}

/** An HTTP server whose upgrades an Upgrader turns into Conns, reported in order. */
export class UpgraderServer {
  readonly server: Server
  readonly upgrader: Upgrader
  readonly conns: Conn[] = []
  #waiting: Array<(conn: Conn) => void> = []

  private constructor (options: UpgraderOptions) {
    this.upgrader = new Upgrader(options)
    this.server = createServer()
    this.server.on('upgrade', (req, socket, head) => {
      this.upgrader.upgrade(req, socket, head).then((conn) => {
        this.conns.push(conn)
        this.#waiting.shift()?.(conn)
      }, () => {})
    })
  }

  static async start (t: { teardown: (fn: () => unknown) => void }, options: UpgraderOptions = {}): Promise<UpgraderServer> {
    const server = new UpgraderServer(options)
    server.server.listen(0, '127.0.0.1')
    await once(server.server, 'listening')
    t.teardown(async () => {
      for (const conn of server.conns) conn.terminate()
      server.server.closeAllConnections()
      server.server.close()
    })
    return server
  }

  get url (): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/`
  }

  /** Opens a `ws` client and resolves with it and the server's Conn for it. */
  async connect (options: WebSocket.ClientOptions = {}): Promise<{ client: RecordingClient, conn: Conn }> {
    const accepted = new Promise<Conn>((resolve) => { this.#waiting.push(resolve) })
    const ws = new WebSocket(this.url, options)
    const client = new RecordingClient(ws)
    await once(ws, 'open')
    return { client, conn: await accepted }
  }
}
