// What an idle connection costs a server, in heap bytes (after a full GC) rather than RSS, so the
// number does not move with other processes' load: for raw TCP, the bare Upgrader and a plugin route.
//   node --import tsx bench/idle-heap.ts [--connections=5000] [--servers=tcp,upgrader,plugin,plugin-async,plugin-request]
//                                         [--echo] [--offer-deflate] [--compression] [--snapshot=DIR]
// (See bench/idle-heap/server.ts for the three plugin handlers.) Each server runs in its own process (bench/idle-heap/server.ts); this one opens the connections with
// `net`, writing the upgrade request by hand. --echo makes every connection do one 32 B echo first;
// --offer-deflate makes the clients offer permessage-deflate, --compression turns it on in the servers;
// --snapshot writes heap snapshots before and after and prints the constructors that grew most.
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import path from 'node:path'
import { createInterface, type Interface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import { TEXT, maskedFrame } from './load/frames.js'
import { diffSnapshots } from './idle-heap/snapshot.js'

interface Settings { connections: number, servers: string[], echo: boolean, offer: boolean, compression: boolean, snapshot: string | undefined }
interface Stats { heapUsed: number, external: number, rss: number }

const WARM_UP = 200
const BATCH = 100
const UPGRADE_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ECHO_FRAME = maskedFrame(TEXT, Buffer.alloc(32, 'x'))

function parseArgs (argv: string[]): Settings {
  const settings: Settings = { connections: 5000, servers: ['tcp', 'upgrader', 'plugin', 'plugin-async', 'plugin-request'], echo: false, offer: false, compression: false, snapshot: undefined }
  for (const arg of argv) {
    const [name, value = ''] = arg.split('=')
    if (name === '--connections') settings.connections = Number(value)
    else if (name === '--servers') settings.servers = value.split(',')
    else if (name === '--echo') settings.echo = true
    else if (name === '--offer-deflate') settings.offer = true
    else if (name === '--compression') settings.compression = true
    else if (name === '--snapshot') settings.snapshot = value
    else throw new Error(`unknown option ${arg}; see the comment at the top of bench/idle-heap.ts`)
  }
  return settings
}

/** A server process and a way to ask it one question at a time. */
class ServerProcess {
  readonly #child: ChildProcessByStdio<Writable, Readable, null>
  readonly #lines: AsyncIterator<string>
  readonly #input: Interface

  constructor (mode: string, compression: boolean) {
    const script = path.join(__dirname, 'idle-heap', 'server.ts')
    this.#child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script, mode], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, COMPRESSION: compression ? '1' : '0' }
    })
    this.#input = createInterface({ input: this.#child.stdout })
    this.#lines = this.#input[Symbol.asyncIterator]()
  }

  async answer<T> (command?: string): Promise<T> {
    if (command !== undefined) this.#child.stdin.write(`${command}\n`)
    const line = await this.#lines.next()
    if (line.done === true) throw new Error('the server process ended')
    return JSON.parse(line.value) as T
  }

  stop (): void {
    this.#input.close()
    this.#child.kill()
  }
}

/** Opens one connection; resolves once the server has answered the upgrade (or echoed, for raw TCP) and, with `echo`, one message. */
function open (port: number, websocket: boolean, echo: boolean, offer: boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = Buffer.alloc(0)
    let stage: 'handshake' | 'echo' = 'handshake'
    socket.on('error', reject)
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (stage === 'handshake') {
        if (!websocket) {
          resolve(socket)
          return
        }
        const end = received.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!received.subarray(0, 12).equals(Buffer.from('HTTP/1.1 101'))) {
          reject(new Error(`upgrade refused: ${received.toString('latin1', 0, end)}`))
          return
        }
        received = received.subarray(end + 4)
        if (!echo) {
          resolve(socket)
          return
        }
        stage = 'echo'
        socket.write(ECHO_FRAME)
      }
      // The echo is 2 bytes of header and 32 of payload, unmasked.
      if (stage === 'echo' && received.length >= 34) resolve(socket)
    })
    socket.on('connect', () => {
      socket.write(websocket
        ? `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${UPGRADE_KEY}\r\nSec-WebSocket-Version: 13\r\n` +
          (offer ? 'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n' : '') + '\r\n'
        : 'x')
    })
  })
}

async function openMany (count: number, port: number, websocket: boolean, echo: boolean, offer: boolean): Promise<Socket[]> {
  const sockets: Socket[] = []
  for (let i = 0; i < count; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - i) }, async () => await open(port, websocket, echo, offer))
    sockets.push(...await Promise.all(batch))
  }
  return sockets
}

async function measure (mode: string, settings: Settings): Promise<Record<string, string>> {
  const server = new ServerProcess(mode, settings.compression)
  try {
    const { port } = await server.answer<{ port: number }>()
    const websocket = mode !== 'tcp'
    // Warm up: code compiled, pools and lazily made shared state in place before the baseline.
    for (const socket of await openMany(WARM_UP, port, websocket, settings.echo, settings.offer)) socket.destroy()
    await new Promise((resolve) => setTimeout(resolve, 500))
    const before = await server.answer<Stats>('stats')
    if (settings.snapshot !== undefined) await server.answer(`snapshot ${path.join(settings.snapshot, `${mode}-before.heapsnapshot`)}`)
    const sockets = await openMany(settings.connections, port, websocket, settings.echo, settings.offer)
    await new Promise((resolve) => setTimeout(resolve, 500))
    const after = await server.answer<Stats>('stats')
    if (settings.snapshot !== undefined) {
      const file = path.join(settings.snapshot, `${mode}-after.heapsnapshot`)
      await server.answer(`snapshot ${file}`)
      console.log(`\n${mode}: bytes per connection by constructor (top 25)`)
      for (const row of diffSnapshots(path.join(settings.snapshot, `${mode}-before.heapsnapshot`), file, settings.connections, 25)) {
        console.log(`  ${row.perConnection.toFixed(1).padStart(8)} B  ${row.countPerConnection.toFixed(2).padStart(6)} objs  ${row.name}`)
      }
    }
    for (const socket of sockets) socket.destroy()
    const per = (key: keyof Stats): string => ((after[key] - before[key]) / settings.connections / 1024).toFixed(2)
    return { server: mode, 'heap KiB/conn': per('heapUsed'), 'external KiB/conn': per('external'), 'RSS KiB/conn': per('rss') }
  } finally {
    server.stop()
  }
}

async function main (): Promise<void> {
  const settings = parseArgs(process.argv.slice(2))
  const rows = []
  for (const mode of settings.servers) rows.push(await measure(mode, settings))
  const notes = [settings.echo ? 'one 32 B echo each' : '', settings.offer ? 'permessage-deflate offered' : '', settings.compression ? 'compression on in the servers' : '']
  console.log(`\n${[`${settings.connections} idle connections`, ...notes.filter((note) => note !== '')].join(', ')}:`)
  console.table(rows)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
