import t from 'tap'
import { PerMessageDeflate } from '../lib/deflate/codec.js'
import { DEFAULT_ZLIB_CONCURRENCY, ZlibLimiter, setZlibConcurrency, zlibLimiter } from '../lib/deflate/limiter.js'
import { ContextPool, ZlibContext } from '../lib/deflate/zlib-context.js'

interface Gate { promise: Promise<void>, open: () => void }
function gate (): Gate {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

t.test('the limiter runs at most `concurrency` jobs, in call order', async (t) => {
  const limiter = new ZlibLimiter(2)
  t.equal(limiter.concurrency, 2)
  const gates = Array.from({ length: 5 }, gate)
  const started: number[] = []
  let peak = 0
  const results = gates.map((g, i) => limiter.run(async () => {
    started.push(i)
    peak = Math.max(peak, limiter.active)
    await g.promise
    return i
  }))
  t.same(started, [0, 1])
  t.equal(limiter.active, 2)
  t.equal(limiter.pending, 3)
  gates[1]!.open()
  await results[1]
  t.same(started, [0, 1, 2], 'a finished job lets the next one start')
  limiter.concurrency = 4
  t.same(started, [0, 1, 2, 3, 4], 'raising the concurrency starts waiting jobs')
  for (const g of gates) g.open()
  t.same(await Promise.all(results), [0, 1, 2, 3, 4])
  t.equal(peak, 4)
  t.equal(limiter.active, 0)
})

t.test('failing jobs free their slot', async (t) => {
  const limiter = new ZlibLimiter(1)
  await t.rejects(limiter.run(() => { throw new Error('sync') }), /sync/)
  await t.rejects(limiter.run(() => Promise.reject(new Error('async'))), /async/)
  t.equal(await limiter.run(async () => 'next'), 'next')
  t.equal(limiter.active, 0)
})

t.test('bad concurrency values are refused', async (t) => {
  t.throws(() => new ZlibLimiter(0), RangeError)
  t.throws(() => { setZlibConcurrency(1.5) }, RangeError)
  t.equal(zlibLimiter.concurrency, DEFAULT_ZLIB_CONCURRENCY)
  setZlibConcurrency(12)
  t.equal(zlibLimiter.concurrency, 12)
  setZlibConcurrency(DEFAULT_ZLIB_CONCURRENCY)
})

t.test('many connections compressing at once never exceed the limit', async (t) => {
  const limiter = new ZlibLimiter(3)
  let peak = 0
  const params = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
  const codecs = Array.from({ length: 40 }, (_, i) => new PerMessageDeflate(params, i % 2 === 0, { limiter }))
  const data = Buffer.from('x'.repeat(100_000) + 'y'.repeat(100_000))
  const original = limiter.run.bind(limiter)
  limiter.run = (job) => original(async () => {
    peak = Math.max(peak, limiter.active)
    return await job()
  })
  const compressed = await Promise.all(codecs.map((codec) => codec.compress(data)))
  const inflated = await Promise.all(codecs.map((_, i) => codecs[i ^ 1]!.decompress(compressed[i]!)))
  t.ok(inflated.every((bytes) => bytes.equals(data)))
  t.equal(peak, 3, 'three jobs ran together, never more')
  for (const codec of codecs) codec.close()
})

t.test('the shared pool keeps a bounded number of idle contexts', async (t) => {
  const pool = new ContextPool(2)
  const settings = { level: 1, memLevel: 1, windowBits: 9 }
  const made = [ZlibContext.deflate(settings), ZlibContext.deflate(settings), ZlibContext.deflate(settings)]
  for (const context of made) pool.give(context)
  t.equal(pool.size, 2, 'the third one was closed')
  t.equal(pool.take(made[0]!.key, () => { throw new Error('should reuse') }), made[1])
  t.equal(pool.take(made[0]!.key, () => { throw new Error('should reuse') }), made[0])
  const fresh = pool.take(made[0]!.key, () => ZlibContext.deflate(settings))
  t.notOk(made.includes(fresh), 'an empty pool makes a new one')
  fresh.abort(new Error('broken'))
  t.equal(fresh.broken, true)
  pool.give(fresh)
  t.equal(pool.size, 0, 'broken contexts are not kept')
  pool.give(made[0]!)
  pool.give(ZlibContext.inflate(9))
  t.equal(pool.size, 2)
  pool.clear()
  t.equal(pool.size, 0)
})
