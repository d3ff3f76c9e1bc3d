import { constants, type DeflateRaw, type InflateRaw } from 'node:zlib'

/**
 * The parts of a Node zlib stream that its own `processChunkSync` (behind `deflateRawSync` and
 * friends) drives: the native handle's `writeSync` and the two-slot state it reports into
 * (avail_out, avail_in after the call). Undocumented; lib/zlib.js of Node 20 and of 24 drives it the
 * same way. `_processChunk` without a callback is no way in: it closes the handle after one call.
 */
interface NativeHandle {
  writeSync (flush: number, input: Buffer, inOffset: number, inLength: number, output: Buffer, outOffset: number, outLength: number): void
}

interface StreamInternals {
  _handle?: NativeHandle | null
  _writeState?: Uint32Array
}

/**
 * Output is cut from one process-wide slab, as Node cuts a stream's output from its `_outBuffer`:
 * sync jobs never overlap, and a slab is never written again once handed out, so every chunk
 * stays valid for as long as its holder keeps it.
 */
const SLAB_SIZE = 16 * 1024
let slab: Buffer | undefined
let slabOffset = 0

let supported: boolean | undefined

/** Whether `stream` exposes what a synchronous job needs (decided on the first stream, then fixed). */
export function canWriteSync (stream: DeflateRaw | InflateRaw): boolean {
  supported ??= hasSyncEntry(stream)
  return supported
}

/** Whether `stream` has the native `writeSync` and the state array it reports into. */
export function hasSyncEntry (stream: object): boolean {
  const internals = stream as StreamInternals
  return typeof internals._handle?.writeSync === 'function' && internals._writeState instanceof Uint32Array
}

/** What a synchronous job reports back: the input zlib consumed and whether output was left. */
export interface SyncResult {
  /** Input bytes zlib consumed. */
  consumed: number
  /** True when the job stopped at `maxOutput` while zlib may still hold output for this input. */
  stopped: boolean
}

/**
 * Feeds `input` to the stream's native handle with Z_SYNC_FLUSH on the calling thread and hands
 * each output chunk to `sink` as it appears (at most one slab, 16 KiB, at a time). Stops early,
 * with `stopped`, once more than `maxOutput` bytes came out and zlib may have more. `sink`
 * returning false stops the job at once (the caller is failing it). Returns zlib's error when it
 * failed; Node has then destroyed the stream. Only when `canWriteSync(stream)`.
 */
export function writeSync (stream: DeflateRaw | InflateRaw, input: Buffer, sink: (chunk: Buffer) => boolean, maxOutput: number): SyncResult | Error {
  const internals = stream as unknown as StreamInternals
  const handle = internals._handle!
  const state = internals._writeState!
  // Deflate output stays below its input plus a few bytes per block: room for all of it in one
  // slab spares the caller a concatenation.
  if (slab === undefined || SLAB_SIZE - slabOffset < Math.min(input.length + 64, SLAB_SIZE)) newSlab()
  let consumed = 0
  let produced = 0
  for (;;) {
    const output = slab!
    const room = SLAB_SIZE - slabOffset
    handle.writeSync(constants.Z_SYNC_FLUSH, input, consumed, input.length - consumed, output, slabOffset, room)
    // zlib failed: Node's error handler destroyed the stream with the error, synchronously.
    if (stream.errored !== null) return stream.errored
    const roomLeft = state[0]!
    consumed = input.length - state[1]!
    const have = room - roomLeft
    // room is never 0, so a full slab (roomLeft 0) always comes with output.
    if (have > 0) {
      const chunk = output.subarray(slabOffset, slabOffset + have)
      slabOffset += have
      produced += have
      if (roomLeft === 0) newSlab()
      if (!sink(chunk)) return { consumed, stopped: false }
    }
    // Output space left over means zlib took all the input it wants and flushed everything.
    if (roomLeft > 0) return { consumed, stopped: false }
    if (produced > maxOutput) return { consumed, stopped: true }
  }
}

function newSlab (): void {
  slab = Buffer.allocUnsafe(SLAB_SIZE)
  slabOffset = 0
}
