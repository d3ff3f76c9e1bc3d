// A plain net.Socket as the WebSocket peer of one Conn: it sends frames built by hand (frames.ts)
// and parses what the Conn sends with its own parser, written independently of lib/protocol.
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { Conn } from '../../lib/conn/conn.js'
import type { ConnOptions } from '../../lib/options.js'
import { frame, type FrameSpec } from './frames.js'
import { socketPair } from './tcp-pair.js'

/** One frame as it was on the wire. */
export interface WireFrame {
  fin: boolean
  /** RSV1..RSV3 as the three bits 0b100, 0b010, 0b001. */
  rsv: number
  opcode: number
  /** The masking key, undefined when the MASK bit was clear. */
  maskKey: Buffer | undefined
  /** How the length was written: 7 (in the second byte), 16 (len7 = 126) or 64 (len7 = 127). */
  lengthEncoding: 7 | 16 | 64
  /** The header bytes exactly as received. */
  header: Buffer
  /** The payload bytes exactly as received (still masked when masked). */
  wirePayload: Buffer
  /** The payload, unmasked. */
  payload: Buffer
}

/** A data message reassembled from its frames. */
export interface WireMessage {
  opcode: number
  data: Buffer
  frames: WireFrame[]
}

/**
 * Parses every frame that arrives on `socket`, in order. Frames wait in a queue until taken with
 * `nextFrame()`; `nextMessage()` reassembles a data message and fails on any interleaving.
 */
export class WireReader {
  /** Whether the peer ended its side of TCP (a FIN arrived). */
  ended = false
  /** Whether the socket is fully closed. */
  closed = false
  /** Every control frame `nextMessage()` passed over, in order. */
  readonly controlFrames: WireFrame[] = []
  /** Bytes received so far. */
  bytesReceived = 0

  readonly #queue: WireFrame[] = []
  readonly #chunks: Buffer[] = []
  #buffered = 0
  #wake: (() => void) | undefined

  constructor (socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
      this.#parse()
      this.#notify()
    })
    socket.on('end', () => { this.ended = true; this.#notify() })
    socket.on('close', () => { this.closed = true; this.#notify() })
  }

  /** Frames parsed and not taken yet. */
  get pending (): number {
    return this.#queue.length
  }

  /** Resolves with the next frame; rejects when the socket ends before one arrives. */
  async nextFrame (): Promise<WireFrame> {
    for (;;) {
      const next = this.#queue.shift()
      if (next !== undefined) return next
      if (this.ended || this.closed) throw new Error(`socket ended with ${this.#buffered} unparsed bytes and no frame`)
      await this.#waitForChange()
    }
  }

  /** Reads frames until a data message is complete; control frames in between go to controlFrames. */
  async nextMessage (): Promise<WireMessage> {
    const frames: WireFrame[] = []
    for (;;) {
      const next = await this.nextFrame()
      if (next.opcode >= 8) {
        this.controlFrames.push(next)
        continue
      }
      if (frames.length === 0 && next.opcode === 0) throw new Error('continuation frame without a message')
      if (frames.length > 0 && next.opcode !== 0) throw new Error(`opcode ${next.opcode} frame inside a fragmented message`)
      frames.push(next)
      if (next.fin) break
    }
    const data = frames.length === 1 ? frames[0]!.payload : Buffer.concat(frames.map((f) => f.payload))
    return { opcode: frames[0]!.opcode, data, frames }
  }

  /** Resolves once the peer ended TCP (its FIN arrived, or the socket closed). */
  async waitEnd (): Promise<void> {
    while (!this.ended && !this.closed) await this.#waitForChange()
  }

  #waitForChange (): Promise<void> {
    return new Promise((resolve) => { this.#wake = resolve })
  }

  #notify (): void {
    const wake = this.#wake
    this.#wake = undefined
    if (wake !== undefined) wake()
  }

  #parse (): void {
    for (;;) {
      if (this.#buffered < 2) return
      const start = this.#peek(Math.min(14, this.#buffered))
      const len7 = start[1]! & 0x7f
      const masked = (start[1]! & 0x80) !== 0
      const lengthBytes = len7 < 126 ? 0 : len7 === 126 ? 2 : 8
      const headerLength = 2 + lengthBytes + (masked ? 4 : 0)
      if (start.length < headerLength) return
      let length = len7
      if (len7 === 126) length = start.readUInt16BE(2)
      if (len7 === 127) length = Number(start.readBigUInt64BE(2))
      if (this.#buffered < headerLength + length) return
      const bytes = this.#take(headerLength + length)
      const header = Buffer.from(bytes.subarray(0, headerLength))
      const wirePayload = bytes.subarray(headerLength)
      const maskKey = masked ? header.subarray(headerLength - 4) : undefined
      let payload = wirePayload
      if (maskKey !== undefined) {
        payload = Buffer.from(wirePayload)
        for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ maskKey[i & 3]!
      }
      this.#queue.push({
        fin: (header[0]! & 0x80) !== 0,
        rsv: (header[0]! >> 4) & 0x07,
        opcode: header[0]! & 0x0f,
        maskKey,
        lengthEncoding: lengthBytes === 0 ? 7 : lengthBytes === 2 ? 16 : 64,
        header,
        wirePayload,
        payload
      })
    }
  }

  /** The first `count` buffered bytes, without consuming them. */
  #peek (count: number): Buffer {
    const first = this.#chunks[0]!
    if (first.length >= count) return first.subarray(0, count)
    return Buffer.concat(this.#chunks, this.#buffered).subarray(0, count)
  }

  #take (count: number): Buffer {
    const first = this.#chunks[0]!
    let taken: Buffer
    if (first.length >= count) {
      taken = first.subarray(0, count)
      if (first.length === count) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(count)
    } else {
      const all = Buffer.concat(this.#chunks, this.#buffered)
      taken = all.subarray(0, count)
      this.#chunks.length = 0
      if (all.length > count) this.#chunks.push(all.subarray(count))
    }
    this.#buffered -= count
    return taken
  }
}

/** A frame as a client must send it: masked (with frames.ts' fixed key unless the spec says otherwise). */
export function clientFrame (spec: FrameSpec): Buffer {
  return frame({ mask: true, ...spec })
}

/** A close frame payload: the code in two bytes, then the reason. */
export function closePayload (code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code, 0)
  payload.write(reason, 2)
  return payload
}

/** The code (1005 when absent) and reason of a close frame. */
export function parseClose (closeFrame: WireFrame): { code: number, reason: string } {
  if (closeFrame.opcode !== 8) throw new Error(`expected a close frame, got opcode ${closeFrame.opcode}`)
  const payload = closeFrame.payload
  if (payload.length === 0) return { code: 1005, reason: '' }
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString() }
}

/**
 * Writes `bytes` one byte at a time and waits until each has been delivered to `receiver` on its own,
 * so the receiving side sees every possible split of the stream.
 */
export async function sendByteByByte (sender: Socket, receiver: Socket, bytes: Buffer): Promise<void> {
  const count = { delivered: 0 }
  let wake: (() => void) | undefined
  const onData = (chunk: Buffer): void => {
    count.delivered += chunk.length
    wake?.()
  }
  const onClose = (): void => { wake?.() }
  sender.setNoDelay(true)
  receiver.on('data', onData)
  receiver.on('close', onClose)
  try {
    for (let i = 0; i < bytes.length; i++) {
      sender.write(bytes.subarray(i, i + 1))
      while (count.delivered < i + 1) {
        if (receiver.destroyed) throw new Error(`receiver closed after ${count.delivered} bytes`)
        await new Promise<void>((resolve) => { wake = resolve })
      }
      if (count.delivered !== i + 1) throw new Error('two bytes arrived in one chunk')
    }
  } finally {
    receiver.off('data', onData)
    receiver.off('close', onClose)
  }
}

/** One Conn over loopback TCP and the raw socket at the other end. */
export interface RawPeer {
  /** The Conn under test. */
  conn: Conn
  /** The Conn's own socket (to watch what it receives). */
  connSocket: Socket
  /** The raw peer socket. */
  peer: Socket
  /** What the Conn sent, parsed. */
  wire: WireReader
  /** Destroys both ends and stops the listener. */
  cleanup: () => Promise<void>
}

/**
 * A Conn with a raw peer socket: `isServer` true (the default) makes the Conn the server end and the
 * raw socket a client that must mask; false makes the Conn a client.
 */
export async function rawPeer (options: ConnOptions = {}, isServer = true): Promise<RawPeer> {
  const { serverSocket, clientSocket, listener } = await socketPair()
  const connSocket = isServer ? serverSocket : clientSocket
  const peer = isServer ? clientSocket : serverSocket
  const wire = new WireReader(peer)
  const conn = new Conn(connSocket, { isServer, options })
  const cleanup = async (): Promise<void> => {
    conn.terminate()
    peer.destroy()
    await conn.closed
    listener.close()
  }
  return { conn, connSocket, peer, wire, cleanup }
}

/** Resolves after `ms` milliseconds (for flow control in tests, never for assertions). */
export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves with `value` after `ms` milliseconds without keeping the process alive: a guard for races against a hang. */
export function hangGuard<T> (ms: number, value: T): Promise<T> {
  return new Promise((resolve) => { setTimeout(resolve, ms, value).unref() })
}

/** Reports whether `promise` has settled by the end of the current macrotask turn. */
export async function isSettledSoon (promise: Promise<unknown>): Promise<boolean> {
  let settled = false
  promise.then(() => { settled = true }, () => { settled = true })
  await new Promise((resolve) => setImmediate(resolve))
  return settled
}

/**
 * More bytes than the kernel can buffer for one loopback connection (the tcp_rmem and tcp_wmem
 * maxima, where Linux tells them, plus 4 MiB), so writes to a peer that does not read must stall.
 */
export function stallingSize (): number {
  try {
    const maximum = (name: string): number => Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2])
    const total = maximum('tcp_rmem') + maximum('tcp_wmem')
    if (Number.isSafeInteger(total)) return total + 4 * 1024 * 1024
  } catch {}
  return 64 * 1024 * 1024
}
