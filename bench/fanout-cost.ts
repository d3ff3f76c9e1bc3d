// `npm run bench:fanout-cost`: what one delivery of a 1 KiB message to each of N connections costs
// the server in CPU time, user and system apart, for a raw TCP write loop, a `ws` loop of `send`,
// and ours publishing to a topic, with 1 and with several messages sent in the same tick.
// The system time is the kernel's: one write(2) per connection and message for a loop, which no
// JavaScript can go below; ours can only share one write between messages sent together.
// Options: --connections=N (10000), --rounds=R (10, after 2 warm-up rounds), --bursts=1,4.
import type { ChildProcess } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { pinProcess } from './runner/environment.js'
import { buildOurs } from './runner/build-ours.js'
import { installCleanup, spawnNode, stopChild } from './runner/procs.js'
import { PAYLOAD_SIZE, type CostCommand, type CostKind, type CostReply } from './fanout-cost/protocol.js'

const FRAME_SIZE = 4 + PAYLOAD_SIZE
const HANDSHAKE = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
const KINDS: CostKind[] = ['tcp', 'ws', 'ours']
const WARM_UP = 2

interface Round { userUs: number, systemUs: number, wallMs: number }

function option (name: string, fallback: string): string {
  return process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
}

class CostServer {
  readonly #child: ChildProcess
  #waiting: Array<(reply: CostReply) => void> = []
  private constructor (child: ChildProcess) {
    this.#child = child
    child.on('message', (reply: CostReply) => this.#waiting.shift()?.(reply))
  }

  static async start (kind: CostKind, oursRoot: string, fdLimit: number): Promise<{ server: CostServer, port: number }> {
    const child = spawnNode({ file: 'bench/fanout-cost/server.ts', args: [kind, oursRoot], env: process.env, cpu: 0, fdLimit })
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m: { port: number }) => resolve(m.port))
      child.once('exit', (code) => reject(new Error(`${kind} server exited with ${String(code)}`)))
    })
    return { server: new CostServer(child), port }
  }

  ask (command: CostCommand): Promise<CostReply> {
    return new Promise((resolve) => { this.#waiting.push(resolve); this.#child.send(command) })
  }

  stop (): Promise<void> { return stopChild(this.#child) }
}

/** N client sockets that count the 1028-byte frames the server sends after its handshake answer. */
async function openClients (port: number, count: number, handshake: boolean, onFrame: () => void): Promise<Socket[]> {
  const sockets: Socket[] = []
  for (let i = 0; i < count; i++) {
    const socket = connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    let answered = !handshake
    let bytes = 0
    socket.on('data', (chunk: Buffer) => {
      if (!answered) {
        const end = chunk.indexOf('\r\n\r\n')
        if (end < 0) return
        answered = true
        chunk = chunk.subarray(end + 4)
      }
      bytes += chunk.length
      while (bytes >= FRAME_SIZE) { bytes -= FRAME_SIZE; onFrame() }
    })
    socket.on('error', (err) => { console.error(`client ${i}: ${err.message}`) })
    if (handshake) socket.write(HANDSHAKE)
    sockets.push(socket)
    // Connecting in batches keeps the accept backlog from overflowing.
    if (i % 500 === 499) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return sockets
}

async function measure (kind: CostKind, burst: number, connections: number, rounds: number, oursRoot: string): Promise<Round[]> {
  const { server, port } = await CostServer.start(kind, oursRoot, connections + 1000)
  let frames = 0
  let onAll = (): void => {}
  const sockets = await openClients(port, connections, kind !== 'tcp', () => { if (++frames === connections * burst) onAll() })
  try {
    for (let tries = 0; (await server.ask({ op: 'cpu' })).connections < connections; tries++) {
      if (tries > 300) throw new Error(`${kind}: not all ${connections} connections arrived`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const results: Round[] = []
    for (let round = 0; round < WARM_UP + rounds; round++) {
      frames = 0
      const all = new Promise<void>((resolve) => { onAll = resolve })
      const before = await server.ask({ op: 'cpu' })
      const start = performance.now()
      await server.ask({ op: 'go', burst })
      await all
      const wallMs = performance.now() - start
      const after = await server.ask({ op: 'cpu' })
      if (round >= WARM_UP) results.push({ userUs: after.userUs - before.userUs, systemUs: after.systemUs - before.systemUs, wallMs })
    }
    return results
  } finally {
    for (const socket of sockets) socket.destroy()
    await server.stop()
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!

async function main (): Promise<void> {
  installCleanup()
  const connections = Number(option('connections', '10000'))
  const rounds = Number(option('rounds', '10'))
  const bursts = option('bursts', '1,4').split(',').map(Number)
  const { root } = buildOurs()
  pinProcess(process.pid, 1)
  console.log(`fan-out cost: ${connections} connections, ${PAYLOAD_SIZE} B text messages, ${rounds} rounds (medians) after ${WARM_UP} warm-up; servers on CPU 0, clients on CPU 1`)
  console.log('CPU time of the server process per delivery, from the trigger until every client has its copies\n')
  console.log('| messages per tick | server | user µs | system µs | total µs | deliveries per CPU-s | ms until all have them |')
  console.log('| --- | --- | --- | --- | --- | --- | --- |')
  for (const burst of bursts) {
    const totals = new Map<CostKind, number>()
    for (const kind of KINDS) {
      const rows = await measure(kind, burst, connections, rounds, root)
      const deliveries = connections * burst
      const user = median(rows.map((r) => r.userUs)) / deliveries
      const system = median(rows.map((r) => r.systemUs)) / deliveries
      const total = median(rows.map((r) => r.userUs + r.systemUs)) / deliveries
      totals.set(kind, total)
      const label = kind === 'tcp' ? 'raw TCP write loop' : kind === 'ws' ? 'ws loop of send' : 'ours, Hub publish'
      console.log(`| ${burst} | ${label} | ${user.toFixed(2)} | ${system.toFixed(2)} | ${total.toFixed(2)} | ${Math.round(1e6 / total).toLocaleString('en-US')} | ${median(rows.map((r) => r.wallMs)).toFixed(1)} |`)
    }
    const ws = totals.get('ws')!
    console.log(`| ${burst} | ws ÷ ours (CPU per delivery) | | | ${(ws / totals.get('ours')!).toFixed(2)}× | | |`)
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
