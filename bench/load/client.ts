import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { Transport } from '../shared/messages.js'
import { ByteCounter, FrameCounter, type MessageCounter } from './counters.js'

/** What a job does when its clients open, receive messages, or close. */
export interface ClientHooks {
  opened: (client: BenchClient) => void
  messages: (client: BenchClient, count: number) => void
  closed: (client: BenchClient, error: Error | undefined) => void
}

/** How every client of a job connects. */
export interface ClientSettings {
  port: number
  transport: Transport
  /** Offer permessage-deflate (with client_no_context_takeover). */
  deflate: boolean
  /** Message size, to count messages on bare TCP. */
  size: number
  /** Request path of the upgrade (default '/'). */
  path?: string
  /** Over TLS (bench:http2 --tls): the server's certificate is not checked. */
  tls?: boolean
  /** Reads the server's frames instead of the default counter (a job that looks into messages). */
  reader?: (client: BenchClient) => MessageCounter
}

// Every socket reads into this one buffer (net's `onread`): no allocation per read and no
// stream machinery; safe because each read is fully counted before the callback returns.
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)
const END_OF_HEADERS = Buffer.from('\r\n\r\n')
const MAX_RESPONSE_HEAD = 8192

/** One load-generator connection: the HTTP upgrade (for WebSocket), then message counting only. */
export class BenchClient {
  readonly socket: Socket
  /** Index of the client in its job, for the job's per-connection arrays. */
  readonly slot: number
  open = false
  done = false
  /** Sec-WebSocket-Extensions of the server's 101 ('' for none or for TCP). */
  extensions = ''
  readonly #counter: MessageCounter
  readonly #hooks: ClientHooks
  #head: Buffer | undefined
  #error: Error | undefined

  constructor (slot: number, settings: ClientSettings, hooks: ClientHooks) {
    this.slot = slot
    this.#hooks = hooks
    this.#counter = settings.reader?.(this) ?? (settings.transport === 'ws' ? new FrameCounter() : new ByteCounter(settings.size))
    if (settings.tls === true) {
      // TLS sockets take no onread buffer: each decrypted chunk comes as a Buffer of its own.
      this.socket = tlsConnect({ host: '127.0.0.1', port: settings.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      this.socket.on('data', (chunk: Buffer) => this.#onRead(chunk.length, chunk))
    } else {
      this.socket = connect({
        host: '127.0.0.1',
        port: settings.port,
        onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.#onRead(n, buf as Buffer) }
      })
    }
    this.socket.setNoDelay(true)
    this.socket.on(settings.tls === true ? 'secureConnect' : 'connect', () => {
      if (settings.transport === 'ws') this.socket.write(upgradeRequest(settings.port, settings.deflate, settings.path ?? '/'))
      else this.#opened()
    })
    this.socket.on('error', (err) => { this.#error ??= err })
    this.socket.on('close', () => {
      this.done = true
      this.#hooks.closed(this, this.#error)
    })
  }

  /** Whether the server sent a close frame. */
  get closeReceived (): boolean {
    return this.#counter.closed
  }

  /** The status code of the server's close frame (1005 for none; undefined before it). */
  get closeCode (): number | undefined {
    return this.#counter.closeCode
  }

  /** Pongs the server sent. */
  get pongs (): number {
    return this.#counter.pongs
  }

  #opened (): void {
    this.open = true
    this.#hooks.opened(this)
  }

  /** net's onread callback; returning true keeps reading. */
  #onRead (length: number, buffer: Buffer): boolean {
    if (this.open) {
      const count = this.#counter.push(buffer, 0, length)
      if (count > 0) this.#hooks.messages(this, count)
      return true
    }
    this.#readHead(length, buffer)
    return true
  }

  #readHead (length: number, buffer: Buffer): void {
    const head = this.#head === undefined ? Buffer.from(buffer.subarray(0, length)) : Buffer.concat([this.#head, buffer.subarray(0, length)])
    const end = head.indexOf(END_OF_HEADERS)
    if (end < 0) {
      this.#head = head
      if (head.length > MAX_RESPONSE_HEAD) this.#fail('no end of the HTTP response head')
      return
    }
    this.#head = undefined
    const text = head.toString('latin1', 0, end)
    if (!text.startsWith('HTTP/1.1 101')) return this.#fail(`upgrade refused: ${text.split('\r\n')[0]}`)
    this.extensions = /^sec-websocket-extensions:[ \t]*(.*)$/im.exec(text)?.[1]?.trim() ?? ''
    this.#opened()
    const rest = end + END_OF_HEADERS.length
    if (rest < head.length && !this.done) {
      const count = this.#counter.push(head, rest, head.length)
      if (count > 0) this.#hooks.messages(this, count)
    }
  }

  #fail (message: string): void {
    this.#error ??= new Error(message)
    this.socket.destroy()
  }
}

function upgradeRequest (port: number, deflate: boolean, path: string): string {
  return `GET ${path} HTTP/1.1\r\n` +
    `Host: 127.0.0.1:${port}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
    'Sec-WebSocket-Version: 13\r\n' +
    (deflate ? 'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n' : '') +
    '\r\n'
}
