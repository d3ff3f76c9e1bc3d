// A runtime without Node's undocumented sync zlib entry: the native handle's writeSync is hidden
// before any codec exists, because the library looks for it once per process, on its first context.
import t from 'tap'
import { promisify } from 'node:util'
import { constants, createInflateRaw, deflateRaw, inflateRaw } from 'node:zlib'
import { PerMessageDeflate } from '../lib/deflate/codec.js'
import { ZlibContext } from '../lib/deflate/zlib-context.js'
import { TAIL, agreed, pair, recorder, text } from './helpers/deflate.js'

const probe = createInflateRaw()
const handlePrototype = Object.getPrototypeOf((probe as unknown as { _handle: object })._handle) as { writeSync?: unknown }
probe.close()
const writeSync = handlePrototype.writeSync
handlePrototype.writeSync = undefined
t.teardown(() => { handlePrototype.writeSync = writeSync })
// Stock zlib's *Sync functions need the hidden entry too.
const stockDeflate = promisify(deflateRaw)
const stockInflate = promisify(inflateRaw)

t.test('without the sync entry everything goes to the threadpool, with the same results', async (t) => {
  const context = ZlibContext.inflate(15)
  t.equal(context.canProcessSync, false)
  context.close()

  for (const noContextTakeover of [false, true]) {
    const { server, client, close } = pair(agreed({ serverNoContextTakeover: noContextTakeover }))
    const messages = [text(1000, 1), text(1000, 1), text(50, 2)]
    const payloads: Buffer[] = []
    for (const message of messages) {
      t.equal(server.compressSync(message), undefined, 'compressSync leaves it to compress()')
      payloads.push(await server.compress(message))
    }
    t.same([...server.compressSync(Buffer.alloc(0))!], [0x00], 'an empty message needs no zlib')
    const stream = Buffer.concat(payloads.flatMap((payload) => [payload, TAIL]))
    t.ok((await stockInflate(stream, { finishFlush: constants.Z_SYNC_FLUSH })).equals(Buffer.concat(messages)), 'stock zlib decodes them')

    for (let i = 0; i < payloads.length; i++) {
      const record = recorder()
      const inflation = client.inflateMessage(record, true)
      inflation.write(payloads[i]!)
      inflation.end()
      t.equal(record.ended, false, 'inflation is not synchronous')
      await record.done
      t.ok(Buffer.concat(record.chunks).equals(messages[i]!), `message ${i}, noContextTakeover=${noContextTakeover}`)
    }
    close()
  }

  const codec = new PerMessageDeflate(agreed(), false)
  const corrupt = recorder()
  const inflation = codec.inflateMessage(corrupt)
  inflation.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))
  inflation.end()
  await corrupt.done
  t.match(corrupt.error, { closeCode: 1007, code: 'ERR_WS_INVALID_COMPRESSED_DATA', message: /invalid compressed data/ })
  codec.close()

  const finalBlock = new PerMessageDeflate(agreed(), false)
  t.equal((await finalBlock.decompress(await stockDeflate(Buffer.from('final')))).toString(), 'final')
  finalBlock.close()
})
