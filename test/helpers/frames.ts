// Builds raw RFC 6455 frames byte by byte, independently of lib/protocol/frame.ts, and records
// what a FrameParser reports. Used by the protocol-* tests only.
import type { DataMessageType } from '../../lib/protocol/constants.js'
import type { ProtocolError } from '../../lib/protocol/errors.js'
import type { FrameSink } from '../../lib/protocol/parser.js'

/** A masking key used when a test asks for `mask: true`. */
export const FIXED_MASK_KEY = Buffer.from([0x37, 0xfa, 0x21, 0x3d])

export interface FrameSpec {
  opcode: number
  /** Payload bytes; a string is encoded as UTF-8. Default empty. */
  payload?: Uint8Array | string
  /** Default true. */
  fin?: boolean
  rsv1?: boolean
  rsv2?: boolean
  rsv3?: boolean
  /** A 4-byte masking key, or true for FIXED_MASK_KEY; absent or false sends the frame unmasked. */
  mask?: Uint8Array | boolean
  /**
   * How the length is written: 7 (in the second byte), 16 (len7 = 126) or 64 (len7 = 127).
   * Default: the minimal encoding. 16 and 64 may be used for short payloads (non-minimal).
   */
  encoding?: 7 | 16 | 64
  /**
   * The length written in the header instead of the payload's; a bigint may set any of the 64 bits
   * (the most significant bit included). Only the header reflects it, the payload is still appended.
   */
  length?: number | bigint
}

/** The payload of `spec` as bytes (not masked). */
export function payloadOf (spec: FrameSpec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0)
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload)
}

function maskKeyOf (spec: FrameSpec): Buffer | undefined {
  if (spec.mask === undefined || spec.mask === false) return undefined
  if (spec.mask === true) return FIXED_MASK_KEY
  if (spec.mask.length !== 4) throw new Error('a masking key has 4 bytes')
  return Buffer.from(spec.mask)
}

/** Just the header bytes of `spec` (first byte, length, masking key). */
export function frameHeader (spec: FrameSpec): Buffer {
  const declared = BigInt(spec.length ?? payloadOf(spec).length)
  const encoding = spec.encoding ?? (declared <= 125n ? 7 : declared <= 0xffffn ? 16 : 64)
  const key = maskKeyOf(spec)
  const bytes: number[] = []
  let b0 = spec.opcode & 0x0f
  if (spec.fin ?? true) b0 |= 0x80
  if (spec.rsv1 === true) b0 |= 0x40
  if (spec.rsv2 === true) b0 |= 0x20
  if (spec.rsv3 === true) b0 |= 0x10
  bytes.push(b0)
  const maskBit = key === undefined ? 0 : 0x80
  if (encoding === 7) {
    if (declared > 125n) throw new Error(`length ${declared} does not fit in 7 bits`)
    bytes.push(maskBit | Number(declared))
  } else if (encoding === 16) {
    if (declared > 0xffffn) throw new Error(`length ${declared} does not fit in 16 bits`)
    bytes.push(maskBit | 126, Number(declared >> 8n), Number(declared & 0xffn))
  } else {
    if (declared > 0xffffffffffffffffn) throw new Error(`length ${declared} does not fit in 64 bits`)
    bytes.push(maskBit | 127)
    for (let shift = 56n; shift >= 0n; shift -= 8n) bytes.push(Number((declared >> shift) & 0xffn))
  }
  if (key !== undefined) bytes.push(key[0]!, key[1]!, key[2]!, key[3]!)
  return Buffer.from(bytes)
}

/** A whole frame: header, then the payload, masked with the key when there is one. */
export function frame (spec: FrameSpec): Buffer {
  const header = frameHeader(spec)
  const payload = payloadOf(spec)
  const key = maskKeyOf(spec)
  if (key !== undefined) {
    for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i % 4]!
  }
  return Buffer.concat([header, payload])
}

/** Mulberry32: a small seeded PRNG so random tests are reproducible. Returns floats in [0, 1). */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** Random bytes from a seeded PRNG. */
export function randomBytes (random: () => number, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256)
  return out
}

/** What a parser reported, one entry per sink call. Payloads are copied when recorded. */
export type SinkEvent =
  | { kind: 'start', type: DataMessageType, compressed: boolean }
  | { kind: 'data', bytes: Buffer }
  | { kind: 'end' }
  | { kind: 'ping', bytes: Buffer }
  | { kind: 'pong', bytes: Buffer }
  | { kind: 'close', code: number, reason: string }
  | { kind: 'error', closeCode: number, code: string, name: string, message: string }

/** A FrameSink that records every call; data pieces are kept as given (views) in `pieces`. */
export class RecordingSink implements FrameSink {
  readonly events: SinkEvent[] = []
  /** The Buffers passed to onMessageData, uncopied, in order. */
  readonly pieces: Buffer[] = []
  readonly errors: ProtocolError[] = []
  /** Called after every recorded event; tests use it to act from inside a callback. */
  after?: (event: SinkEvent) => void
  /** How many messages came through onWholeMessage (recorded as start, data, end). */
  wholeMessages = 0

  private record (event: SinkEvent): void {
    this.events.push(event)
    if (this.after !== undefined) this.after(event)
  }

  onMessageStart (type: DataMessageType, compressed: boolean): void {
    this.record({ kind: 'start', type, compressed })
  }

  onMessageData (piece: Buffer): void {
    this.pieces.push(piece)
    this.record({ kind: 'data', bytes: Buffer.from(piece) })
  }

  onMessageEnd (): void {
    this.record({ kind: 'end' })
  }

  onWholeMessage (type: DataMessageType, payload: Buffer): void {
    this.wholeMessages++
    this.onMessageStart(type, false)
    if (payload.length > 0) this.onMessageData(payload)
    this.onMessageEnd()
  }

  onPing (payload: Buffer): void {
    this.record({ kind: 'ping', bytes: Buffer.from(payload) })
  }

  onPong (payload: Buffer): void {
    this.record({ kind: 'pong', bytes: Buffer.from(payload) })
  }

  onClose (code: number, reason: string): void {
    this.record({ kind: 'close', code, reason })
  }

  onProtocolError (error: ProtocolError): void {
    this.errors.push(error)
    this.record({ kind: 'error', closeCode: error.closeCode, code: error.code, name: error.name, message: error.message })
  }
}

/** Merges neighbouring data events, so event lists from different chunkings compare equal. */
export function mergeData (events: readonly SinkEvent[]): SinkEvent[] {
  const out: SinkEvent[] = []
  for (const event of events) {
    const last = out[out.length - 1]
    if (event.kind === 'data' && last !== undefined && last.kind === 'data') {
      out[out.length - 1] = { kind: 'data', bytes: Buffer.concat([last.bytes, event.bytes]) }
    } else {
      out.push(event)
    }
  }
  return out
}

/** Event lists with Buffers shown as hex, for readable t.same diffs. */
export function showEvents (events: readonly SinkEvent[]): unknown[] {
  return events.map((event) => 'bytes' in event ? { ...event, bytes: event.bytes.toString('hex') } : event)
}

/**
 * The events a correct parser reports for a stream of valid frames (data pieces merged), derived
 * from the frame specs alone. Nothing after a close frame is expected.
 */
export function expectedEvents (specs: readonly FrameSpec[]): SinkEvent[] {
  const events: SinkEvent[] = []
  let inMessage = false
  for (const spec of specs) {
    const payload = payloadOf(spec)
    const fin = spec.fin ?? true
    if (spec.opcode === 1 || spec.opcode === 2) {
      events.push({ kind: 'start', type: spec.opcode, compressed: spec.rsv1 === true })
      inMessage = true
    }
    if (spec.opcode <= 2) {
      if (!inMessage) throw new Error('continuation without a message in a valid stream')
      if (payload.length > 0) events.push({ kind: 'data', bytes: payload })
      if (fin) {
        events.push({ kind: 'end' })
        inMessage = false
      }
    } else if (spec.opcode === 9) {
      events.push({ kind: 'ping', bytes: payload })
    } else if (spec.opcode === 10) {
      events.push({ kind: 'pong', bytes: payload })
    } else if (spec.opcode === 8) {
      const code = payload.length === 0 ? 1005 : payload.readUInt16BE(0)
      events.push({ kind: 'close', code, reason: payload.subarray(2).toString() })
      break
    }
  }
  return mergeData(events)
}
