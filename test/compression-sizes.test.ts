// Compressed messages of every size from 0 to 1 MiB, text and binary, whole and fragmented, both
// ways at once over real TCP, with pings between the fragments, in the three pairings (ws client →
// our Upgrader, our Dialer → our Upgrader, our Dialer → ws's server), with context takeover and
// without it on small windows.
import t, { type Test } from 'tap'
import type { PerMessageDeflateOptions } from 'ws'
import type { CompressionOptions } from '../lib/deflate/compression.js'
import { TextMessage } from '../lib/protocol/constants.js'
import { Lab, binaryOf, digest, textOf, transfer, type Pairing, type TestMessage } from './helpers/compression-peers.js'
import { decodeWire, parseAgreed, type Agreed, type FrameLog, type TapMessage } from './helpers/wire-tap.js'

const SIZES = [0, 1, 31, 32, 1023, 1024, 64 * 1024, 1024 * 1024]

function messagesFor (seed: number): TestMessage[] {
  const out: TestMessage[] = []
  for (const [i, size] of SIZES.entries()) {
    for (const binary of [false, true]) {
      for (const fragmented of [false, true]) {
        out.push({ binary, fragmented, data: binary ? binaryOf(size, seed + i) : textOf(size, seed + i) })
      }
    }
  }
  return out
}

const pings = (log: FrameLog): number => log.frames.filter((f) => f.opcode === 9).length
const pongs = (log: FrameLog): number => log.frames.filter((f) => f.opcode === 10).length

/** What the wire of one direction shows, for the checks below. */
async function wireFacts (messages: TapMessage[], sent: TestMessage[], bits: number, noContextTakeover: boolean): Promise<Record<string, unknown>> {
  const big = messages.filter((_, i) => sent[i]!.fragmented && sent[i]!.data.length >= 64 * 1024)
  return {
    decoded: digest((await decodeWire(messages, bits, noContextTakeover)).map((data, i) => ({ binary: messages[i]!.opcode === 2, data }))),
    allCompressed: messages.every((m) => m.compressed),
    rsv1FirstFrameOnly: messages.every((m) => m.frames.slice(1).every((f) => f.rsv === 0)),
    // Pings went out between the compressed fragments of every large fragmented message.
    bigFragmentedWithPingsInside: big.length === 4 && big.every((m) => m.frames.length > 1 && m.controlsInside > 0)
  }
}

async function exchange (t: Test, pairing: Pairing, agreed: Agreed): Promise<void> {
  const { client, server, session } = pairing
  const up = messagesFor(1)
  const down = messagesFor(100)
  const [atServer, atClient] = await Promise.all([transfer(client, server, up), transfer(server, client, down)])
  t.same(digest(atServer), digest(up), 'the server got every message intact')
  t.same(digest(atClient), digest(down), 'the client got every message intact')
  t.same(parseAgreed(session.toClient.extensions), agreed, 'the parameters agreed')
  const wellFormed = { decoded: [], allCompressed: true, rsv1FirstFrameOnly: true, bigFragmentedWithPingsInside: true }
  t.same(await wireFacts(session.toServer.messages(), up, agreed.clientMaxWindowBits, agreed.clientNoContextTakeover),
    { ...wellFormed, decoded: digest(up) }, 'client to server: compressed, RSV1 on first frames only, pings inside, stock zlib decodes it')
  t.same(await wireFacts(session.toClient.messages(), down, agreed.serverMaxWindowBits, agreed.serverNoContextTakeover),
    { ...wellFormed, decoded: digest(down) }, 'server to client: the same')
  t.ok(pings(session.toServer) > 0 && pongs(session.toClient) === pings(session.toServer), 'the server answered every ping')
  t.ok(pings(session.toClient) > 0 && pongs(session.toServer) === pings(session.toClient), 'the client answered every ping')
  await client.close()
}

const settings: Array<{ name: string, agreed: Agreed, ours: CompressionOptions, ws: PerMessageDeflateOptions }> = [
  {
    name: 'context takeover, 15-bit windows',
    agreed: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 },
    ours: { threshold: 0 },
    ws: { threshold: 0 }
  },
  {
    name: 'no context takeover, windows of 9 and 8 bits',
    agreed: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 8 },
    ours: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 8 },
    ws: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 8 }
  }
]

for (const setting of settings) {
  t.test(setting.name, async (t) => {
    const lab = await Lab.start(t)
    await t.test('ws client → our Upgrader', async (t) => {
      await exchange(t, await lab.wsToUpgrader(setting.ws, { compression: { threshold: 0 } }), setting.agreed)
    })
    await t.test('our Dialer → our Upgrader', async (t) => {
      await exchange(t, await lab.dialerToUpgrader({ compression: setting.ours }, { compression: { threshold: 0 } }), setting.agreed)
    })
    await t.test('our Dialer → ws server', async (t) => {
      await exchange(t, await lab.dialerToWs({ compression: { threshold: 0 } }, setting.ws), setting.agreed)
    })
  })
}

t.test('a streaming reader gets a compressed message piece by piece as it inflates', async (t) => {
  const lab = await Lab.start(t)
  const { clientConn, serverConn } = await lab.dialerToUpgrader({ compression: true }, { compression: true })
  const data = textOf(1024 * 1024, 9)
  const reading = (async () => {
    const reader = await serverConn!.nextReader()
    const pieces: Buffer[] = []
    for await (const piece of reader) pieces.push(piece)
    return pieces
  })()
  await clientConn!.writeMessage(TextMessage, data)
  const pieces = await reading
  t.ok(pieces.length > 1, `it came in ${pieces.length} pieces`)
  t.ok(Buffer.concat(pieces).equals(data), 'which make up the message')
  await clientConn!.close()
})
