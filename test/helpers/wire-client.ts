import { connect } from 'node:net'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'

/** One frame as a server sent it. */
export interface WireFrame {
  fin: boolean
  rsv: number
  opcode: number
  payload: Buffer
}

/** Options of a hand-built client frame. */
export interface FrameSpec {
  fin?: boolean
  rsv?: number
  opcode: number
  payload?: Buffer | string
  /** Announce this length instead of the payload's (for lying headers). */
  length?: number
}

/** Encodes a masked client frame exactly as specified, with the shortest length encoding. */
export function clientFrame (spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload) : spec.payload ?? Buffer.alloc(0)
  const length = spec.length ?? payload.length
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8
  const header = Buffer.alloc(2 + lengthBytes + 4)
  header[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | spec.opcode
  if (lengthBytes === 0) header[1] = 0x80 | length
  else if (lengthBytes === 2) { header[1] = 0x80 | 126; header.writeUInt16BE(length, 2) } else { header[1] = 0x80 | 127; header.writeBigUInt64BE(BigInt(length), 2) }
  const key = randomBytes(4)
  key.copy(header, 2 + lengthBytes)
  const masked = Buffer.from(payload)
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i & 3]!
  return Buffer.concat([header, masked])
}

/**
 * A minimal, independent WebSocket client working at the byte level: it writes any frame,
 * however broken, and parses what the server sends, so tests can check exact close codes. It runs
 * on a TCP socket (`open`) or on any duplex whose handshake was done elsewhere, such as an HTTP/2
 * extended CONNECT stream (`over`).
 */
export class WireClient {
  readonly socket: Duplex
  private buffer: Buffer = Buffer.alloc(0)
  private readonly frames: WireFrame[] = []
  private waiter: (() => void) | undefined
  ended = false

  private constructor (socket: Duplex, rest: Buffer) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => { this.received(chunk) })
    socket.on('end', () => { this.ended = true; this.waiter?.() })
    socket.on('close', () => { this.ended = true; this.waiter?.() })
    socket.on('error', () => {})
    if (rest.length > 0) this.received(rest)
  }

  /** Connects and completes the opening handshake for `path`. */
  static async open (port: number, path: string, extraHeaders = ''): Promise<WireClient> {
    const socket = connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    await once(socket, 'connect')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`)
    let head = Buffer.alloc(0)
    for (;;) {
      const [chunk] = await once(socket, 'data') as [Buffer]
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end !== -1) {
        const status = head.subarray(0, end).toString().split('\r\n')[0]!
        if (!status.startsWith('HTTP/1.1 101')) throw new Error(`handshake refused: ${status}`)
        socket.pause()
        const client = new WireClient(socket, head.subarray(end + 4))
        socket.resume()
        return client
      }
    }
  }

  /** A client on `stream`, already a WebSocket (an HTTP/2 stream after its 200). */
  static over (stream: Duplex): WireClient {
    return new WireClient(stream, Buffer.alloc(0))
  }

  send (...specs: FrameSpec[]): void {
    this.socket.write(Buffer.concat(specs.map(clientFrame)))
  }

  sendRaw (bytes: Buffer): void {
    this.socket.write(bytes)
  }

  /** Waits for the next frame from the server; null when the server ended the connection first. */
  async next (): Promise<WireFrame | null> {
    for (;;) {
      const frame = this.frames.shift()
      if (frame !== undefined) return frame
      if (this.ended) return null
      await new Promise<void>((resolve) => { this.waiter = resolve })
      this.waiter = undefined
    }
  }

  /** Waits for the server to end the connection (TCP, or the HTTP/2 stream). */
  async closedByServer (): Promise<void> {
    while (!this.ended) {
      await new Promise<void>((resolve) => { this.waiter = resolve })
      this.waiter = undefined
    }
  }

  destroy (): void {
    this.socket.destroy()
  }

  private pending: Buffer[] = []
  private pendingLength = 0
  private needed = 2

  /** Collects chunks and joins them only once a whole frame is there, so big frames stay linear. */
  private received (chunk: Buffer): void {
    this.pending.push(chunk)
    this.pendingLength += chunk.length
    if (this.pendingLength < this.needed) return
    this.buffer = Buffer.concat([this.buffer, ...this.pending])
    this.pending = []
    this.pendingLength = 0
    this.parse()
  }

  private parse (): void {
    this.needed = 2
    for (;;) {
      const buf = this.buffer
      if (buf.length < 2) break
      let length = buf[1]! & 0x7f
      let offset = 2
      if (length === 126) { if (buf.length < 4) break; length = buf.readUInt16BE(2); offset = 4 } else if (length === 127) { if (buf.length < 10) break; length = Number(buf.readBigUInt64BE(2)); offset = 10 }
      if (buf.length < offset + length) { this.needed = offset + length - buf.length; break }
      this.frames.push({ fin: (buf[0]! & 0x80) !== 0, rsv: (buf[0]! >> 4) & 7, opcode: buf[0]! & 0x0f, payload: Buffer.from(buf.subarray(offset, offset + length)) })
      this.buffer = buf.subarray(offset + length)
    }
    this.waiter?.()
  }
}
