// One server of bench/idle-heap.ts, in its own process so that its heap holds only what it serves:
//   node --expose-gc --import tsx bench/idle-heap/server.ts <tcp|upgrader|plugin|plugin-async|plugin-request>
// It prints its port, then answers each line on stdin: "stats" with its heap after a full GC,
// "cpu" with its process.cpuUsage(), "snapshot <file>" by writing a heap snapshot there.
import { createInterface } from 'node:readline'
import type { AddressInfo } from 'node:net'
import { createServer, type Server, type Socket } from 'node:net'
import { getHeapStatistics, writeHeapSnapshot } from 'node:v8'
import Fastify from 'fastify'
import { fastifyWsconn } from '../../lib/plugin/index.js'
import { Upgrader } from '../../lib/upgrader.js'
import type { Conn } from '../../lib/conn/conn.js'

/** What every server does with a connection: the echo loop a user writes, waiting for a message. */
async function echo (conn: Conn): Promise<void> {
  try {
    for await (const message of conn) await conn.writeMessage(message.type, message.data)
  } catch {
    conn.terminate()
  }
}

// As in bench/servers/wsconn.ts: ws allows 100 MiB, the plugin's 1 MiB default would refuse (d).
const options = { readLimit: 64 * 1024 * 1024, checkOrigin: false, compression: process.env.COMPRESSION === '1' }

async function start (mode: string): Promise<Server> {
  if (mode === 'tcp') {
    const server = createServer((socket: Socket) => { socket.on('data', (chunk) => socket.write(chunk)) })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return server
  }
  const app = Fastify({ logger: false })
  if (mode.startsWith('plugin')) {
    // PING_INTERVAL (ms) turns the plugin's heartbeat on.
    await app.register(fastifyWsconn, { ...options, pingInterval: Number(process.env.PING_INTERVAL ?? 0) })
    // 'plugin' returns at once, as bench/servers/wsconn.ts does; 'plugin-async' awaits its loop,
    // as most handlers in the README do; 'plugin-request' also uses its request afterwards, so
    // the request stays alive as long as the connection.
    if (mode === 'plugin') app.get('/', { websocket: true }, (conn) => { echo(conn).catch(() => {}) })
    else if (mode === 'plugin-async') app.get('/', { websocket: true }, async (conn) => { await echo(conn) })
    else if (mode === 'plugin-request') {
      app.get('/', { websocket: true }, async (conn, request) => {
        await echo(conn)
        request.log.debug('connection ended')
      })
    } else throw new Error(`unknown server ${mode}`)
  } else if (mode === 'upgrader') {
    const upgrader = new Upgrader({ readLimit: options.readLimit, checkOrigin: () => true, compression: options.compression })
    app.server.on('upgrade', (req, socket, head) => {
      upgrader.upgrade(req, socket, head).then((conn) => { echo(conn).catch(() => {}) }, () => {})
    })
  } else {
    throw new Error(`unknown server ${mode}: tcp, upgrader or plugin[-async|-request]`)
  }
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  return app.server as unknown as Server
}

/** Heap, memory outside it (ArrayBuffers included) and RSS after two full collections (the second catches what finalizers of the first freed). */
function stats (): { heapUsed: number, external: number, rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  gc()
  gc()
  const memory = process.memoryUsage()
  return { heapUsed: getHeapStatistics().used_heap_size, external: memory.external, rss: memory.rss }
}

async function main (): Promise<void> {
  const server = await start(process.argv[2] ?? '')
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`)
  for await (const line of createInterface({ input: process.stdin })) {
    const [command, argument] = line.split(' ')
    if (command === 'stats') process.stdout.write(`${JSON.stringify(stats())}\n`)
    else if (command === 'cpu') process.stdout.write(`${JSON.stringify(process.cpuUsage())}\n`)
    else if (command === 'snapshot') {
      stats()
      writeHeapSnapshot(argument)
      process.stdout.write(`${JSON.stringify({ written: argument })}\n`)
    }
  }
  process.exit(0)
}

main().catch((err: unknown) => {
  console.error('idle-heap server failed:', err)
  process.exit(1)
})
