// The echo example on bounded memory against clients that send and never read: what the server
// buffers per connection is bounded by the read-ahead (readBufferSize), not by the read limit, so
// 50 clients pushing 64 KiB messages leave the server far below +256 MiB; a message larger than
// the read-ahead still arrives whole.
import t from 'tap'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { WireClient, clientFrame } from './helpers/wire-client.js'
import { startEchoExample } from './helpers/echo-example.js'

const MiB = 1024 * 1024
const CLIENTS = 50
/** What each client offers at most: 800 MiB in all, far more than the server may hold. */
const OFFERED_PER_CLIENT = 16 * MiB

let child: ChildProcess
let port = 0

t.before(async () => {
  ({ child, port } = await startEchoExample())
})

t.teardown(() => { child.kill() })

function serverRss (): number {
  const status = readFileSync(`/proc/${child.pid!}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
}

/** Writes `frame` until `limit` bytes went out or the server stopped taking them (no 'drain' for a second). */
async function pushUntilStalled (client: WireClient, frame: Buffer, limit: number): Promise<number> {
  let sent = 0
  while (sent < limit) {
    sent += frame.length
    if (client.socket.write(frame)) continue
    const drained = await Promise.race([
      once(client.socket, 'drain').then(() => true, () => false),
      new Promise<boolean>((resolve) => { setTimeout(resolve, 1000, false).unref() })
    ])
    if (!drained) break
  }
  return sent
}

t.test('50 clients that send 64 KiB messages and never read the echoes', { skip: process.platform !== 'linux' ? 'reads the server\'s RSS from /proc' : false }, async (t) => {
  const clients: WireClient[] = []
  t.teardown(() => { for (const client of clients) client.destroy() })
  // Warm up the server (its code, the JIT) before the baseline.
  const warm = await WireClient.open(port, '/echo')
  warm.send({ opcode: 2, payload: Buffer.alloc(64 * 1024) })
  await warm.next()
  warm.destroy()
  const before = serverRss()
  for (let i = 0; i < CLIENTS; i++) {
    const client = await WireClient.open(port, '/echo')
    // The client reads nothing: the echoes pile up in the server's socket, then TCP pushes back.
    client.socket.pause()
    clients.push(client)
  }
  const frame = clientFrame({ opcode: 2, payload: Buffer.alloc(64 * 1024, 1) })
  const sent = await Promise.all(clients.map((client) => pushUntilStalled(client, frame, OFFERED_PER_CLIENT)))
  const offered = sent.reduce((a, b) => a + b, 0)
  const growth = serverRss() - before
  t.ok(growth < 256 * MiB, `server RSS grew by ${(growth / MiB).toFixed(0)} MiB (bound 256) while clients offered ${(offered / MiB).toFixed(0)} MiB`)
  t.ok(sent.some((bytes) => bytes < OFFERED_PER_CLIENT), 'the server pushed back instead of taking everything')

  // A message far larger than the read-ahead still arrives whole, on a fresh connection.
  const big = Buffer.alloc(8 * MiB, 3)
  const reader = await WireClient.open(port, '/echo')
  t.teardown(() => { reader.destroy() })
  reader.send({ opcode: 2, payload: big })
  const echoed = await reader.next()
  t.ok(echoed?.payload.equals(big), 'an 8 MiB message (8 times the read-ahead) was echoed whole')
})
