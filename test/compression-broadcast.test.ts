// PreparedMessage to many compressed connections over real TCP: every client gets it, connections
// with the same level and window share one compression (counted at the zlib limiter, and seen as
// identical frames on the wire), and each connection's own context goes on correctly afterwards.
import t from 'tap'
import type { Conn } from '../lib/conn/conn.js'
import { zlibLimiter } from '../lib/deflate/limiter.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { PingMessage, TextMessage } from '../lib/protocol/constants.js'
import { Lab, digest, textOf, type Pairing } from './helpers/compression-peers.js'

/** Counts the jobs that go through the process-wide zlib limiter while `run` runs. */
async function countZlibJobs (run: () => Promise<void>): Promise<number> {
  const original = zlibLimiter.run
  let count = 0
  zlibLimiter.run = function <T> (this: typeof zlibLimiter, job: () => Promise<T>): Promise<T> {
    count++
    return original.call(this, job) as Promise<T>
  }
  try {
    await run()
  } finally {
    zlibLimiter.run = original
  }
  return count
}

t.test('one PreparedMessage to many ws clients: compressed once per level and window', async (t) => {
  const lab = await Lab.start(t)
  const pairings: Array<{ name: string, pairing: Pairing }> = []
  const add = async (name: string, clientOptions: Parameters<Lab['wsToUpgrader']>[0]): Promise<void> => {
    pairings.push({ name, pairing: await lab.wsToUpgrader(clientOptions, { compression: true }) })
  }
  for (let i = 0; i < 4; i++) await add(`window 15 #${i}`, {})
  await add('window 15, server_no_context_takeover', { serverNoContextTakeover: true })
  await add('window 10 #0', { serverMaxWindowBits: 10 })
  await add('window 10 #1', { serverMaxWindowBits: 10 })
  await add('window 15 at level 9', {})
  await add('no compression', false)
  pairings[7]!.pairing.serverConn!.setCompressionLevel(9)
  const conns = pairings.map(({ pairing }) => pairing.serverConn!)

  const before = textOf(2000, 1)
  const prepared = new PreparedMessage(TextMessage, textOf(8000, 2))
  // Each connection first builds some history of its own.
  const firstRound = pairings.map(({ pairing }) => pairing.client.receive())
  await Promise.all(conns.map((conn) => conn.writeMessage(TextMessage, before)))
  await Promise.all(firstRound)

  const received = pairings.map(({ pairing }) => pairing.client.receive())
  const jobs = await countZlibJobs(async () => {
    await Promise.all(conns.map((conn) => conn.writePreparedMessage(prepared)))
    await Promise.all(received)
  })
  t.equal(jobs, 3, 'three compressions for eight compressed connections: level 3 window 15, level 3 window 10, level 9 window 15')
  t.same(digest(await Promise.all(received)), digest(conns.map(() => ({ binary: false, data: prepared.data }))), 'every client got the message')

  const framesOf = (name: string): Buffer => {
    const { pairing } = pairings.find((p) => p.name === name)!
    return pairing.session.toClient.messages()[1]!.payload
  }
  const shared = framesOf('window 15 #0')
  for (const name of ['window 15 #1', 'window 15 #2', 'window 15 #3', 'window 15, server_no_context_takeover']) {
    t.ok(framesOf(name).equals(shared), `${name} got the very same compressed bytes`)
  }
  t.ok(framesOf('window 10 #1').equals(framesOf('window 10 #0')), 'the two window-10 connections share theirs')
  t.notOk(framesOf('window 10 #0').equals(shared), 'which differ from the window-15 ones')
  t.ok(framesOf('window 15 at level 9').length < shared.length, 'level 9 made its own, smaller one')
  t.equal(pairings[8]!.pairing.session.toClient.messages()[1]!.compressed, false, 'the connection without compression got it uncompressed')

  // The connections' own history goes on past the prepared message: sending the first message
  // again makes the compressor refer back only to what the peer's window really holds.
  const after = pairings.map(({ pairing }) => pairing.client.receive())
  await Promise.all(conns.map((conn) => conn.writeMessage(TextMessage, before)))
  t.same(digest(await Promise.all(after)), digest(conns.map(() => ({ binary: false, data: before }))), 'every client decoded the next message')
  for (const { pairing } of pairings) await pairing.client.close()
})

t.test('PreparedMessage from compressed clients, and prepared control frames', async (t) => {
  const lab = await Lab.start(t)
  const prepared = new PreparedMessage(TextMessage, textOf(5000, 3))
  const ping = new PreparedMessage(PingMessage, 'prepared ping')
  const clients: Conn[] = []
  const servers: Pairing[] = []
  for (let i = 0; i < 3; i++) {
    const pairing = await lab.dialerToUpgrader({ compression: true }, { compression: true })
    servers.push(pairing)
    clients.push(pairing.clientConn!)
  }
  const arrived = servers.map(({ server }) => Promise.all([server.receive(), server.receive()]))
  for (const conn of clients) {
    await conn.writePreparedMessage(ping)
    await conn.writePreparedMessage(prepared)
    await conn.writePreparedMessage(prepared)
  }
  for (const [i, result] of (await Promise.all(arrived)).entries()) {
    t.same(digest(result), digest([prepared, prepared].map(({ data }) => ({ binary: false, data }))), `server ${i} got both`)
    const frames = servers[i]!.session.toServer.messages()
    t.same(frames.map((m) => m.compressed), [true, true], 'compressed')
    t.ok(frames[0]!.payload.equals(frames[1]!.payload), 'the same compressed payload twice')
    t.notOk(frames[0]!.frames[0]!.maskKey!.equals(frames[1]!.frames[0]!.maskKey!), 'masked with a fresh key each time')
    t.equal(servers[i]!.session.toServer.frames[0]!.opcode, 9, 'the prepared ping went first, as a control frame')
  }
  for (const pairing of servers) await pairing.client.close()
})
