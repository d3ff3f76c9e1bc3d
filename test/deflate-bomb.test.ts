import t from 'tap'
import { constants, createDeflateRaw } from 'node:zlib'
import { PerMessageDeflate } from '../lib/deflate/codec.js'
import type { AgreedParams } from '../lib/deflate/negotiation.js'
import { ReadLimitError, type ProtocolError } from '../lib/protocol/errors.js'

const GIB = 1024 * 1024 * 1024
const READ_LIMIT = 1024 * 1024

/**
 * A permessage-deflate payload that inflates to 1 GiB of zeros. DEFLATE cannot expand more than
 * about 1032:1, so the smallest such payload is about 1 MiB; run-length strategy makes it quickly.
 */
async function gigabyteBomb (): Promise<Buffer> {
  const deflate = createDeflateRaw({ level: 1, strategy: constants.Z_RLE })
  const output: Buffer[] = []
  deflate.on('data', (chunk: Buffer) => { output.push(chunk) })
  const zeros = Buffer.alloc(16 * 1024 * 1024)
  for (let written = 0; written < GIB; written += zeros.length) {
    await new Promise<void>((resolve) => { deflate.write(zeros, () => { resolve() }) })
  }
  await new Promise<void>((resolve) => { deflate.flush(constants.Z_SYNC_FLUSH, () => { resolve() }) })
  deflate.close()
  const stream = Buffer.concat(output)
  return stream.subarray(0, stream.length - 4)
}

function params (noContextTakeover: boolean): AgreedParams {
  return { serverNoContextTakeover: false, clientNoContextTakeover: noContextTakeover, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
}

/** Feeds `pieces` as one message and reports what reached the target. */
function inflate (codec: PerMessageDeflate, pieces: Buffer[]): Promise<{ delivered: number, consumed: number, error: ProtocolError | undefined }> {
  return new Promise((resolve) => {
    const result = { delivered: 0, consumed: 0, error: undefined as ProtocolError | undefined }
    const inflation = codec.inflateMessage({
      onData: (chunk) => { result.delivered += chunk.length },
      onEnd: () => { resolve(result) },
      onError: (error) => {
        result.error = error
        resolve(result)
      },
      onConsumed: (bytes) => { result.consumed += bytes }
    })
    for (const piece of pieces) inflation.write(piece)
    inflation.end()
  })
}

t.test('a 1 GiB bomb stops at the read limit', async (t) => {
  const bomb = await gigabyteBomb()
  t.ok(bomb.length < 2 * 1024 * 1024, `the bomb is ${bomb.length} bytes`)

  for (const noContextTakeover of [false, true]) {
    const heapBefore = process.memoryUsage().arrayBuffers
    // As 1 KiB frames: inflation must stop long before the input runs out.
    const codec = new PerMessageDeflate(params(noContextTakeover), true, { readLimit: () => READ_LIMIT })
    const frames: Buffer[] = []
    for (let at = 0; at < bomb.length; at += 1024) frames.push(bomb.subarray(at, at + 1024))
    const framed = await inflate(codec, frames)
    t.type(framed.error, ReadLimitError, 'fails with ReadLimitError')
    t.equal(framed.error?.closeCode, 1009)
    t.equal(framed.error?.code, 'ERR_WS_READ_LIMIT')
    t.ok(framed.delivered <= READ_LIMIT, `delivered ${framed.delivered} bytes, at most the limit`)
    t.ok(framed.delivered > READ_LIMIT - 64 * 1024, 'and inflated up to about the limit before stopping')
    t.ok(framed.consumed < 16 * 1024, `only ${framed.consumed} compressed bytes were inflated`)
    t.same(codec.contexts, { compressor: false, decompressor: false }, 'the context that hit the limit is freed')

    // As one piece: zlib works in 16 KiB output steps and is stopped at the first one past the limit.
    const whole = await inflate(new PerMessageDeflate(params(noContextTakeover), true, { readLimit: () => READ_LIMIT }), [bomb])
    t.type(whole.error, ReadLimitError)
    t.ok(whole.delivered <= READ_LIMIT, `delivered ${whole.delivered} bytes`)
    const growth = process.memoryUsage().arrayBuffers - heapBefore
    t.ok(growth < 64 * 1024 * 1024, `buffers grew by ${growth} bytes, far from 1 GiB`)
    codec.close()
  }
})
