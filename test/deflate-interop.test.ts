import t, { type Test } from 'tap'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { PerMessageDeflate, type InflateTarget } from '../lib/deflate/codec.js'
import { acceptClientResponse, formatClientOffer, negotiateServer, type DeflateNegotiationOptions } from '../lib/deflate/negotiation.js'
import type { ProtocolError } from '../lib/protocol/errors.js'
import { prng } from './helpers/frames.js'

// ws's own permessage-deflate and header code: the independent peer (no types ship for them).
// Their files are not in ws's "exports", so they are loaded by path.
const load = createRequire(__filename)
const wsLib = join(dirname(load.resolve('ws')), 'lib')
type Callback = (error: Error | null, result?: Buffer) => void
interface WsPerMessageDeflate {
  offer (): Record<string, unknown>
  accept (configurations: unknown[]): Record<string, unknown>
  compress (data: Buffer, fin: boolean, callback: Callback): void
  decompress (data: Buffer, fin: boolean, callback: Callback): void
  cleanup (): void
}
const WsDeflate = load(join(wsLib, 'permessage-deflate.js')) as new (options: Record<string, unknown>) => WsPerMessageDeflate
const wsExtension = load(join(wsLib, 'extension.js')) as {
  parse (header: string): Record<string, unknown[]>
  format (extensions: Record<string, unknown>): string
}

function wsCall (method: 'compress' | 'decompress', codec: WsPerMessageDeflate, data: Buffer, fin: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    codec[method](data, fin, (error, result) => {
      if (error !== null) reject(error)
      else resolve(result!)
    })
  })
}

/** Messages of several sizes: JSON-like text that repeats, and a little noise. */
function messages (seed: number): Buffer[] {
  const random = prng(seed)
  const json = (count: number): Buffer => Buffer.from(JSON.stringify(Array.from({ length: count }, (_, i) => ({ id: i, user: `user${Math.floor(random() * 50)}`, score: Math.floor(random() * 1000) }))))
  return [Buffer.alloc(0), Buffer.from('hi'), json(3), json(3), json(200), json(5000), Buffer.from(Array.from({ length: 3000 }, () => Math.floor(random() * 256)))]
}

function inflateWithOurs (codec: PerMessageDeflate, pieces: Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const target: InflateTarget = {
      onData: (chunk) => { chunks.push(chunk) },
      onEnd: () => { resolve(Buffer.concat(chunks)) },
      onError: (error: ProtocolError) => { reject(error) }
    }
    const inflation = codec.inflateMessage(target)
    for (const piece of pieces) if (piece.length > 0) inflation.write(piece)
    inflation.end()
  })
}

/** Sends every message both ways, whole and in fragments, and checks each arrives intact. */
async function exchange (t: Test, ours: PerMessageDeflate, theirs: WsPerMessageDeflate, label: string): Promise<void> {
  let failures = 0
  for (const [round, data] of messages(label.length).entries()) {
    // Ours to ws: whole, then compressed in two pieces.
    const whole = await ours.compress(data)
    const fromOurs = await wsCall('decompress', theirs, whole, true)
    if (!fromOurs.equals(data)) failures++
    const deflation = ours.startCompress()
    const half = data.length >> 1
    const first = await deflation.write(data.subarray(0, half))
    const last = await deflation.end(data.subarray(half))
    const parts = [await wsCall('decompress', theirs, first, false), await wsCall('decompress', theirs, last, true)]
    if (!Buffer.concat(parts).equals(data)) failures++
    // ws to ours: whole, then as two fragments fed piece by piece.
    const wsWhole = await wsCall('compress', theirs, data, true)
    if (!(await inflateWithOurs(ours, [wsWhole])).equals(data)) failures++
    const wsFirst = await wsCall('compress', theirs, data.subarray(0, half), false)
    const wsLast = await wsCall('compress', theirs, data.subarray(half), true)
    if (!(await inflateWithOurs(ours, [wsFirst, wsLast.subarray(0, 1), wsLast.subarray(1)])).equals(data)) failures++
    if (failures > 0) {
      t.fail(`${label}: message ${round} (${data.length} bytes) broke`)
      return
    }
  }
  t.pass(label)
}

const ourOptions: DeflateNegotiationOptions[] = []
for (const serverNoContextTakeover of [false, true]) {
  for (const clientNoContextTakeover of [false, true]) {
    for (const serverMaxWindowBits of [undefined, 8, 12]) {
      for (const clientMaxWindowBits of [undefined, 9, 15]) {
        ourOptions.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits })
      }
    }
  }
}
const wsOptions: Array<Record<string, unknown>> = [
  {},
  { serverNoContextTakeover: true, clientNoContextTakeover: true },
  { serverMaxWindowBits: 10, clientMaxWindowBits: 11 },
  { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
  { clientMaxWindowBits: false }
]

t.test('our client against ws\'s server, every parameter combination', async (t) => {
  let agreed = 0
  for (const ours of ourOptions) {
    for (const options of wsOptions) {
      const label = `ours ${JSON.stringify(ours)} / ws ${JSON.stringify(options)}`
      const offer = formatClientOffer(ours)
      const wsServer = new WsDeflate({ ...options, isServer: true })
      let response: string
      try {
        response = wsExtension.format({ 'permessage-deflate': [wsServer.accept(wsExtension.parse(offer)['permessage-deflate']!)] })
      } catch {
        // ws refuses offers it cannot meet (for instance a window smaller than its fixed one).
        wsServer.cleanup()
        continue
      }
      const params = acceptClientResponse(response, ours)
      if (typeof params === 'string') {
        t.fail(`${label}: refused ws's answer ${response}: ${params}`)
        continue
      }
      agreed++
      const client = new PerMessageDeflate(params, false, { threshold: 0 })
      await exchange(t, client, wsServer, label)
      client.close()
      wsServer.cleanup()
    }
  }
  t.ok(agreed > ourOptions.length * 3, `${agreed} combinations agreed`)
})

t.test('ws\'s client against our server, every parameter combination', async (t) => {
  const wsClientOptions: Array<Record<string, unknown>> = [
    {},
    { serverNoContextTakeover: true, clientNoContextTakeover: true },
    { serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
    { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
    { clientMaxWindowBits: false },
    { clientNoContextTakeover: true },
    { clientNoContextTakeover: false }
  ]
  let refusedByWs = 0
  for (const options of wsClientOptions) {
    for (const ours of ourOptions) {
      const label = `ws ${JSON.stringify(options)} / ours ${JSON.stringify(ours)}`
      const wsClient = new WsDeflate({ ...options, isServer: false })
      const offer = wsExtension.format({ 'permessage-deflate': wsClient.offer() })
      const negotiated = negotiateServer(offer, ours)
      if (negotiated === undefined) {
        t.fail(`${label}: declined ${offer}`)
        continue
      }
      try {
        wsClient.accept(wsExtension.parse(negotiated.response)['permessage-deflate']!)
      } catch (error) {
        // Told clientNoContextTakeover: false, ws refuses a server's client_no_context_takeover
        // that it did not offer, though RFC 7692 §7.1.1.2 lets the server add it.
        t.ok(ours.clientNoContextTakeover === true && options.clientNoContextTakeover === false, `${label}: ws refused ${negotiated.response}: ${String(error)}`)
        refusedByWs++
        wsClient.cleanup()
        continue
      }
      const server = new PerMessageDeflate(negotiated.params, true, { threshold: 0 })
      await exchange(t, server, wsClient, label)
      server.close()
      wsClient.cleanup()
    }
  }
  t.equal(refusedByWs, ourOptions.length / 2, 'only that known strictness of ws refused an answer')
})
