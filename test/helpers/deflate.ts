// Codec-level helpers of the deflate-* tests: compressible text, agreed parameters, codec pairs
// and a recording InflateTarget.
import { constants, deflateRawSync } from 'node:zlib'
import { PerMessageDeflate, type InflateTarget } from '../../lib/deflate/codec.js'
import type { AgreedParams } from '../../lib/deflate/negotiation.js'
import type { ProtocolError } from '../../lib/protocol/errors.js'
import { prng } from './frames.js'

/** RFC 7692 §7.2.2: the 4 bytes a sender strips from each message and a receiver appends. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

/** `data` as the payload of one compressed message: raw deflate, sync-flushed, its 4-byte tail stripped. */
export function compressPayload (data: Buffer): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH })
  if (!out.subarray(-4).equals(TAIL)) throw new Error('no sync-flush tail')
  return out.subarray(0, -4)
}

const WORDS = ['alpha', 'beta', 'gamma', 'delta', '"id":', '"name":', '{', '}', ',', 'websocket', 'deflate', '\u00e9t\u00e9', '\u2603']

/** Compressible UTF-8 text of exactly `length` bytes (JSON-like words from a seeded generator). */
export function text (length: number, seed = 1): Buffer {
  const random = prng(seed)
  const parts: string[] = []
  let size = 0
  while (size < length) {
    const word = WORDS[Math.floor(random() * WORDS.length)]! + (random() < 0.3 ? String(Math.floor(random() * 1000)) : ' ')
    parts.push(word)
    size += Buffer.byteLength(word)
  }
  const bytes = Buffer.from(parts.join(''))
  // Cut on an ASCII byte so the text stays valid UTF-8, then pad with spaces.
  let cut = length
  while (cut > 0 && bytes[cut - 1]! >= 0x80) cut--
  return Buffer.concat([bytes.subarray(0, cut), Buffer.alloc(length - cut, 0x20)])
}

/** Agreed parameters: context takeover both ways and 15-bit windows unless overridden. */
export function agreed (overrides: Partial<AgreedParams> = {}): AgreedParams {
  return { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15, ...overrides }
}

/** A server and a client codec that agreed on `params`. */
export function pair (params: AgreedParams, options: ConstructorParameters<typeof PerMessageDeflate>[2] = {}): { server: PerMessageDeflate, client: PerMessageDeflate, close: () => void } {
  const server = new PerMessageDeflate(params, true, options)
  const client = new PerMessageDeflate(params, false, options)
  return { server, client, close: () => { server.close(); client.close() } }
}

/** An InflateTarget that records what an inflation delivers; `done` settles on onEnd or onError. */
export interface Recorder extends InflateTarget {
  chunks: Buffer[]
  consumed: number
  ended: boolean
  error: ProtocolError | undefined
  done: Promise<void>
}

/** A fresh Recorder. */
export function recorder (): Recorder {
  let settle!: () => void
  const record: Recorder = {
    chunks: [],
    consumed: 0,
    ended: false,
    error: undefined,
    done: new Promise<void>((resolve) => { settle = resolve }),
    onData: (chunk) => { record.chunks.push(chunk) },
    onEnd: () => { record.ended = true; settle() },
    onError: (error) => { record.error = error; settle() },
    onConsumed: (bytes) => { record.consumed += bytes }
  }
  return record
}
