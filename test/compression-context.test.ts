// Context takeover really used (repeated and similar messages shrink on the wire because they refer
// back to earlier ones), and no_context_takeover really resetting (every message decodes alone),
// in both directions over real TCP; plus the wire bytes of a JSON chat trace in each mode.
import t, { type Test } from 'tap'
import { Lab, digest, transfer, type Pairing, type TestMessage } from './helpers/compression-peers.js'
import { decodeWire, decodesAlone, type FrameLog, type TapMessage } from './helpers/wire-tap.js'
import { prng } from './helpers/frames.js'

/** A chat room's traffic: JSON messages of 90-200 bytes with the same keys and a small vocabulary. */
function chatTrace (count: number, seed: number): TestMessage[] {
  const random = prng(seed)
  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace']
  const words = ['hi', 'there', 'how', 'are', 'you', 'doing', 'today', 'the', 'build', 'is', 'green', 'again', 'lunch', 'at', 'noon', 'ship', 'it', 'thanks', 'see', 'you', 'later', 'deploy', 'failed', 'retrying']
  const out: TestMessage[] = []
  for (let i = 0; i < count; i++) {
    const text = Array.from({ length: 3 + Math.floor(random() * 12) }, () => words[Math.floor(random() * words.length)]).join(' ')
    const message = { type: 'message', room: 'general', user: users[Math.floor(random() * users.length)], text, ts: 1767225600000 + i * 1375 + Math.floor(random() * 1000), id: `m${100000 + i}` }
    out.push({ binary: false, data: Buffer.from(JSON.stringify(message)), fragmented: false })
  }
  return out
}

/** One 600-byte JSON message sent ten times: with context takeover, copies two to ten are a back-reference each. */
function repeats (): TestMessage[] {
  const data = Buffer.from(JSON.stringify({ type: 'state', players: Array.from({ length: 8 }, (_, i) => ({ id: i, name: `player${i}`, x: i * 13 % 7, y: i * 29 % 11, hp: 100 - i * 3 })) }))
  return Array.from({ length: 10 }, () => ({ binary: false, data, fragmented: false }))
}

const payloadSizes = (messages: TapMessage[]): number[] => messages.map((m) => m.payload.length)
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0)

/**
 * Sends the repeats and the trace both ways and checks each direction: `takeover` true means
 * later copies are tiny and some messages cannot be decoded alone; false means every copy has the
 * size of the first and every message decodes alone. Returns the trace's wire bytes per direction.
 */
async function run (t: Test, pairing: Pairing, takeover: { up: boolean, down: boolean }): Promise<{ up: number, down: number }> {
  const { client, server, session } = pairing
  const trace = chatTrace(300, 7)
  const sent = [...repeats(), ...trace]
  const [atServer, atClient] = await Promise.all([transfer(client, server, sent), transfer(server, client, sent)])
  t.same(digest(atServer), digest(sent), 'the server got every message intact')
  t.same(digest(atClient), digest(sent), 'the client got every message intact')
  const check = async (log: FrameLog, keeps: boolean, direction: string): Promise<number> => {
    const messages = log.messages()
    const copies = payloadSizes(messages.slice(0, 10))
    t.same(digest((await decodeWire(messages, 15, !keeps)).map((data) => ({ binary: false, data }))), digest(sent),
      `${direction}: stock zlib decodes the wire ${keeps ? 'with one context across messages' : 'message by message'}`)
    const alone = messages.filter((m) => decodesAlone(m)).length
    if (keeps) {
      t.ok(copies.slice(1).every((size) => size * 10 < copies[0]!), `${direction}: copies 2-10 are back-references (${copies.join(', ')} bytes)`)
      t.ok(alone < messages.length / 2, `${direction}: most messages refer to earlier ones (${alone} of ${messages.length} decode alone)`)
    } else {
      t.ok(copies.every((size) => size === copies[0]) && copies[0]! > 100, `${direction}: every copy costs the same (${copies[0]} bytes)`)
      t.equal(alone, messages.length, `${direction}: every message decodes alone`)
    }
    return sum(messages.slice(10).map((m) => m.wireBytes))
  }
  const up = await check(session.toServer, takeover.up, 'client to server')
  const down = await check(session.toClient, takeover.down, 'server to client')
  await client.close()
  return { up, down }
}

t.test('context takeover and no context takeover, measured on the wire', async (t) => {
  const lab = await Lab.start(t)
  // What the trace costs uncompressed: a 2-byte header (4 from 126 bytes on), plus the mask from a client.
  const frames = (masked: boolean): number => sum(chatTrace(300, 7).map((m) => m.data.length + (m.data.length < 126 ? 2 : 4) + (masked ? 4 : 0)))
  const raw = { down: frames(false), up: frames(true) }
  const all = { threshold: 0 }
  const results: Record<string, { up: number, down: number }> = {}
  results['ours, context takeover'] = await run(t, await lab.dialerToUpgrader({ compression: all }, { compression: all }), { up: true, down: true })
  results['ours, no context takeover'] = await run(t, await lab.dialerToUpgrader(
    { compression: { ...all, serverNoContextTakeover: true, clientNoContextTakeover: true } }, { compression: all }), { up: false, down: false })
  // Each side's mode on its own: the server keeps its context while the client resets, and back.
  await run(t, await lab.dialerToUpgrader({ compression: all }, { compression: { ...all, clientNoContextTakeover: true } }), { up: false, down: true })
  await run(t, await lab.dialerToUpgrader({ compression: { ...all, serverNoContextTakeover: true } }, { compression: all }), { up: true, down: false })
  results['ws client → ours, context takeover'] = await run(t, await lab.wsToUpgrader(all, { compression: all }), { up: true, down: true })
  results['ours → ws server, no context takeover'] = await run(t, await lab.dialerToWs({ compression: all }, { ...all, serverNoContextTakeover: true, clientNoContextTakeover: true }), { up: false, down: false })

  const takeover = results['ours, context takeover']!
  const reset = results['ours, no context takeover']!
  t.ok(takeover.down * 2 < reset.down && takeover.up * 2 < reset.up, 'context takeover at least halves the trace against no context takeover')
  t.ok(reset.down < raw.down && reset.up < raw.up, 'no context takeover still beats sending it raw')
  t.comment(`JSON chat trace, 300 messages: ${raw.down} wire bytes uncompressed server→client, ${raw.up} client→server`)
  for (const [name, bytes] of Object.entries(results)) {
    t.comment(`${name}: server→client ${bytes.down} bytes (${(raw.down / bytes.down).toFixed(2)}x), client→server ${bytes.up} bytes (${(raw.up / bytes.up).toFixed(2)}x)`)
  }
})
