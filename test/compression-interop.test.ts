// Every RFC 7692 parameter combination (server/client no_context_takeover × server/client
// max_window_bits 8..15) over real TCP between our Upgrader and the ws client, our Upgrader and our
// Dialer, and our Dialer and ws's server; a proxy in the middle records the frames, and stock zlib
// decodes them with exactly the agreed window and context mode.
import t, { type Test } from 'tap'
import { Lab, binaryOf, digest, textOf, transfer, type Pairing, type TestMessage } from './helpers/compression-peers.js'
import { decodeWire, parseAgreed, type Agreed } from './helpers/wire-tap.js'

const WINDOW_BITS = [8, 9, 10, 11, 12, 13, 14, 15]

const combos: Agreed[] = []
for (const serverNoContextTakeover of [false, true]) {
  for (const clientNoContextTakeover of [false, true]) {
    for (const serverMaxWindowBits of WINDOW_BITS) {
      for (const clientMaxWindowBits of WINDOW_BITS) {
        combos.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits })
      }
    }
  }
}

function label (combo: Agreed): string {
  return `${combo.serverNoContextTakeover ? 's-nct' : 's-ct'} ${combo.clientNoContextTakeover ? 'c-nct' : 'c-ct'} s${combo.serverMaxWindowBits} c${combo.clientMaxWindowBits}`
}

/**
 * Per direction: the empty message, 20 KiB of JSON text, the same bytes again as a fragmented
 * binary message (with context takeover it refers back 20 KiB, past every window under 15 bits, so
 * a sender ignoring the agreed window fails the decoding), and 8 KiB of noisy binary in fragments
 * (which zlib cannot hold back whole, so it really goes out in several frames). Every size from 0
 * to 1 MiB in every type and fragmentation is in compression-sizes.
 */
function messagesFor (seed: number): TestMessage[] {
  const json = textOf(20 * 1024, seed)
  return [
    { binary: false, data: Buffer.alloc(0), fragmented: false },
    { binary: false, data: json, fragmented: false },
    { binary: true, data: json, fragmented: true },
    { binary: true, data: binaryOf(8 * 1024, seed), fragmented: true }
  ]
}

/** Runs `run` for every combination, a few connections at a time (zlib work waits on the threadpool). */
async function forEachCombo (run: (combo: Agreed, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < combos.length) {
      const index = next++
      await run(combos[index]!, index)
    }
  }
  await Promise.all([worker(), worker()])
}

/**
 * Exchanges the messages both ways at once and checks everything: the agreed parameters at both
 * ends, every message intact, every message compressed with RSV1 on its first frame only, and the
 * wire of each direction decoded by stock zlib with the agreed window and context mode.
 */
async function check (t: Test, combo: Agreed, pairing: Pairing, seed: number): Promise<void> {
  const { client, server, session } = pairing
  const up = messagesFor(seed)
  const down = messagesFor(seed + 1)
  const [atServer, atClient] = await Promise.all([transfer(client, server, up), transfer(server, client, down)])
  await client.close()
  const toServer = session.toServer.messages()
  const toClient = session.toClient.messages()
  const rsvRight = (messages: typeof toServer): boolean => messages.every((m) => m.frames[0]!.rsv === 4 && m.frames.slice(1).every((f) => f.rsv === 0))
  const decoded = async (messages: typeof toServer, bits: number, noContextTakeover: boolean): Promise<string[]> =>
    digest((await decodeWire(messages, bits, noContextTakeover)).map((data, i) => ({ binary: messages[i]!.opcode === 2, data })))
  const actual = {
    clientAgreed: client.agreed(),
    serverAgreed: server.agreed(),
    wireAgreed: parseAgreed(session.toClient.extensions),
    atServer: digest(atServer),
    atClient: digest(atClient),
    wireToServer: await decoded(toServer, combo.clientMaxWindowBits, combo.clientNoContextTakeover),
    wireToClient: await decoded(toClient, combo.serverMaxWindowBits, combo.serverNoContextTakeover),
    rsv1FirstFrameOnly: rsvRight(toServer) && rsvRight(toClient),
    fragmented: toServer[3]!.frames.length > 1 && toClient[3]!.frames.length > 1
  }
  t.same(actual, {
    clientAgreed: combo,
    serverAgreed: combo,
    wireAgreed: combo,
    atServer: digest(up),
    atClient: digest(down),
    wireToServer: digest(up),
    wireToClient: digest(down),
    rsv1FirstFrameOnly: true,
    fragmented: true
  }, label(combo))
}

t.test('the ws client (its perMessageDeflate options) against our Upgrader', async (t) => {
  const lab = await Lab.start(t)
  await forEachCombo(async (combo, index) => {
    await check(t, combo, await lab.wsToUpgrader({ ...combo, threshold: 0 }, { compression: { threshold: 0 } }), index)
  })
})

t.test('our Dialer against our Upgrader (server_* asked by the client, client_* imposed by the server)', async (t) => {
  const lab = await Lab.start(t)
  await forEachCombo(async (combo, index) => {
    const pairing = await lab.dialerToUpgrader(
      { compression: { threshold: 0, serverNoContextTakeover: combo.serverNoContextTakeover, serverMaxWindowBits: combo.serverMaxWindowBits } },
      { compression: { threshold: 0, clientNoContextTakeover: combo.clientNoContextTakeover, clientMaxWindowBits: combo.clientMaxWindowBits } })
    await check(t, combo, pairing, index + 7)
  })
})

t.test('our Dialer against ws\'s WebSocketServer (its perMessageDeflate options)', async (t) => {
  const lab = await Lab.start(t)
  await forEachCombo(async (combo, index) => {
    await check(t, combo, await lab.dialerToWs({ compression: { threshold: 0 } }, { ...combo, threshold: 0 }), index + 13)
  })
})
