// A TCP proxy that records every WebSocket frame both ways (the wire truth, parsed here without
// lib/), and stock zlib decoding of what it saw with exactly the agreed window and context mode.
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { constants, createInflateRaw, inflateRawSync, type InflateRaw } from 'node:zlib'

/** RFC 7692 §7.2.1: the tail a sender strips and a receiver appends. */
export const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

/** One frame as it crossed the proxy. */
export interface TapFrame {
  fin: boolean
  /** RSV1..RSV3 as the bits 0b100, 0b010, 0b001. */
  rsv: number
  opcode: number
  /** The payload, unmasked. */
  payload: Buffer
  /** Header and payload bytes on the wire. */
  wireBytes: number
  /** The masking key, undefined for an unmasked frame. */
  maskKey: Buffer | undefined
}

/** A data message reassembled from the frames that crossed the proxy. */
export interface TapMessage {
  opcode: number
  /** RSV1 of its first frame. */
  compressed: boolean
  frames: TapFrame[]
  /** The payloads of its frames joined (compressed bytes when `compressed`). */
  payload: Buffer
  /** Header and payload bytes of all its frames. */
  wireBytes: number
  /** Control frames that went between its first and its last frame. */
  controlsInside: number
}

/** Every frame one direction of a proxied connection carried after the HTTP handshake. */
export class FrameLog {
  readonly frames: TapFrame[] = []
  /** The HTTP request or response head that came before the frames. */
  head = ''
  #buffer: Buffer = Buffer.alloc(0)
  #handshakeDone = false

  feed (chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    if (!this.#handshakeDone) {
      const end = this.#buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      this.#handshakeDone = true
      this.head = this.#buffer.subarray(0, end).toString('latin1')
      this.#buffer = this.#buffer.subarray(end + 4)
    }
    for (;;) {
      const buf = this.#buffer
      if (buf.length < 2) return
      const len7 = buf[1]! & 0x7f
      const masked = (buf[1]! & 0x80) !== 0
      const lengthBytes = len7 < 126 ? 0 : len7 === 126 ? 2 : 8
      const headerLength = 2 + lengthBytes + (masked ? 4 : 0)
      if (buf.length < headerLength) return
      const length = len7 < 126 ? len7 : len7 === 126 ? buf.readUInt16BE(2) : Number(buf.readBigUInt64BE(2))
      if (buf.length < headerLength + length) return
      const payload = Buffer.from(buf.subarray(headerLength, headerLength + length))
      const maskKey = masked ? Buffer.from(buf.subarray(headerLength - 4, headerLength)) : undefined
      if (maskKey !== undefined) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ maskKey[i & 3]!
      this.frames.push({ fin: (buf[0]! & 0x80) !== 0, rsv: (buf[0]! >> 4) & 7, opcode: buf[0]! & 0x0f, payload, wireBytes: headerLength + length, maskKey })
      this.#buffer = buf.subarray(headerLength + length)
    }
  }

  /** The Sec-WebSocket-Extensions value of the head ('' when absent). */
  get extensions (): string {
    const line = this.head.split('\r\n').find((l) => l.toLowerCase().startsWith('sec-websocket-extensions:'))
    return line === undefined ? '' : line.slice(line.indexOf(':') + 1).trim()
  }

  /** Frame bytes seen so far. */
  get wireBytes (): number {
    return this.frames.reduce((sum, frame) => sum + frame.wireBytes, 0)
  }

  /** The data messages seen so far, in order; throws on frames of two messages interleaved. */
  messages (): TapMessage[] {
    const out: TapMessage[] = []
    let open: TapMessage | undefined
    for (const frame of this.frames) {
      if (frame.opcode >= 8) {
        if (open !== undefined) open.controlsInside++
        continue
      }
      if (open === undefined) {
        if (frame.opcode === 0) throw new Error('continuation frame without a message')
        open = { opcode: frame.opcode, compressed: (frame.rsv & 4) !== 0, frames: [], payload: Buffer.alloc(0), wireBytes: 0, controlsInside: 0 }
      } else if (frame.opcode !== 0) {
        throw new Error(`opcode ${frame.opcode} inside a fragmented message`)
      }
      open.frames.push(frame)
      open.wireBytes += frame.wireBytes
      if (frame.fin) {
        open.payload = Buffer.concat(open.frames.map((f) => f.payload))
        out.push(open)
        open = undefined
      }
    }
    return out
  }
}

/** One proxied TCP connection: what the client sent and what the server sent. */
export interface TapSession {
  toServer: FrameLog
  toClient: FrameLog
}

/** A loopback TCP proxy in front of `target` that records the frames of every connection. */
export class WireTap {
  readonly sessions: TapSession[] = []
  readonly #server: Server
  readonly #sockets = new Set<Socket>()

  private constructor (server: Server) {
    this.#server = server
  }

  static async start (target: number): Promise<WireTap> {
    const server = createServer()
    const tap = new WireTap(server)
    server.on('connection', (client) => {
      const upstream = connect(target, '127.0.0.1')
      const session: TapSession = { toServer: new FrameLog(), toClient: new FrameLog() }
      tap.sessions.push(session)
      for (const socket of [client, upstream]) {
        socket.setNoDelay(true)
        tap.#sockets.add(socket)
        socket.on('close', () => { tap.#sockets.delete(socket) })
        socket.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.on('data', (chunk: Buffer) => { session.toServer.feed(chunk) })
      upstream.on('data', (chunk: Buffer) => { session.toClient.feed(chunk) })
      client.pipe(upstream)
      upstream.pipe(client)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return tap
  }

  get port (): number {
    return (this.#server.address() as AddressInfo).port
  }

  /** The session of the connection whose request was for `path`. */
  sessionFor (path: string): TapSession {
    const session = this.sessions.find((s) => s.toServer.head.startsWith(`GET ${path} `))
    if (session === undefined) throw new Error(`no proxied request for ${path}`)
    return session
  }

  async close (): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** What RFC 7692 parameters a Sec-WebSocket-Extensions response agreed, with the RFC's defaults. */
export interface Agreed {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number
  clientMaxWindowBits: number
}

/** Reads a single permessage-deflate response value (written here, not with lib/'s parser). */
export function parseAgreed (header: string): Agreed {
  const [name, ...params] = header.split(';').map((part) => part.trim())
  if (name !== 'permessage-deflate') throw new Error(`not a permessage-deflate response: ${header}`)
  const agreed: Agreed = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
  for (const param of params) {
    const [key, value] = param.split('=')
    if (key === 'server_no_context_takeover') agreed.serverNoContextTakeover = true
    else if (key === 'client_no_context_takeover') agreed.clientNoContextTakeover = true
    else if (key === 'server_max_window_bits') agreed.serverMaxWindowBits = Number(value)
    else if (key === 'client_max_window_bits') agreed.clientMaxWindowBits = Number(value)
    else throw new Error(`unknown parameter ${param}`)
  }
  return agreed
}

/** Runs one zlib step on a persistent raw inflater and resolves with what it produced. */
function inflateStep (inflater: InflateRaw, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = []
    const onData = (chunk: Buffer): void => { out.push(chunk) }
    inflater.on('data', onData)
    inflater.once('error', reject)
    inflater.write(data)
    inflater.flush(constants.Z_SYNC_FLUSH, () => {
      inflater.off('data', onData)
      inflater.off('error', reject)
      resolve(Buffer.concat(out))
    })
  })
}

/**
 * Decodes the messages one direction carried with stock zlib and exactly the agreed window:
 * compressed messages with one inflater kept across messages, or (`noContextTakeover`) each alone
 * with a fresh one, which fails if the sender referred back to an earlier message.
 */
export async function decodeWire (messages: TapMessage[], windowBits: number, noContextTakeover: boolean): Promise<Buffer[]> {
  const out: Buffer[] = []
  const inflater = noContextTakeover ? undefined : createInflateRaw({ windowBits })
  try {
    for (const message of messages) {
      if (!message.compressed) {
        out.push(message.payload)
      } else {
        const input = Buffer.concat([message.payload, DEFLATE_TAIL])
        out.push(inflater === undefined ? inflateRawSync(input, { windowBits, finishFlush: constants.Z_SYNC_FLUSH }) : await inflateStep(inflater, input))
      }
    }
  } finally {
    inflater?.close()
  }
  return out
}

/** Whether a compressed payload decodes on its own (no reference to earlier messages). */
export function decodesAlone (message: TapMessage, windowBits = 15): boolean {
  try {
    inflateRawSync(Buffer.concat([message.payload, DEFLATE_TAIL]), { windowBits, finishFlush: constants.Z_SYNC_FLUSH })
    return true
  } catch {
    return false
  }
}
