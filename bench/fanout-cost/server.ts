// One fan-out server for bench/fanout-cost.ts: `node --import tsx bench/fanout-cost/server.ts <kind> <oursRoot>`.
// Every connection is a subscriber; on the runner's 'go' it sends `burst` 1 KiB text messages to
// all of them, in one tick, the way its library does it; it answers 'cpu' with its CPU time.
import { createServer, type IncomingMessage } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import path from 'node:path'
import { WebSocketServer } from 'ws'
import { PAYLOAD_SIZE, type CostCommand, type CostKind, type CostReply } from './protocol.js'

const text = 'x'.repeat(PAYLOAD_SIZE)

async function main (): Promise<void> {
  const kind = process.argv[2] as CostKind
  const oursRoot = process.argv[3]!
  let count = 0
  let send: (burst: number) => void
  let port: number
  if (kind === 'tcp') {
    // What any server pays at least: one write of an already framed message per connection.
    const frame = Buffer.alloc(4 + PAYLOAD_SIZE, 'x')
    frame.writeUInt16BE(0x8100 | 126, 0)
    frame.writeUInt16BE(PAYLOAD_SIZE, 2)
    const sockets: Socket[] = []
    const server = createTcpServer((socket) => {
      socket.setNoDelay(true)
      socket.on('error', () => {})
      sockets.push(socket)
      count++
    })
    server.listen(0, '127.0.0.1', 4096)
    await new Promise((resolve) => server.once('listening', resolve))
    port = (server.address() as AddressInfo).port
    send = (burst) => { for (let i = 0; i < burst; i++) for (const socket of sockets) socket.write(frame) }
  } else if (kind === 'ws') {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, backlog: 4096, perMessageDeflate: false })
    wss.on('connection', (ws) => { ws.on('error', () => {}); count++ })
    await new Promise((resolve) => wss.once('listening', resolve))
    port = (wss.address() as AddressInfo).port
    send = (burst) => { for (let i = 0; i < burst; i++) for (const ws of wss.clients) ws.send(text, { binary: false }) }
  } else {
    const ours = require(path.join(oursRoot, 'index.js')) as typeof import('../../lib/index.js')
    const hub = new ours.Hub()
    const upgrader = new ours.Upgrader({ hub, checkOrigin: () => true })
    const server = createServer()
    server.on('upgrade', (req: IncomingMessage, socket, head) => {
      upgrader.upgrade(req, socket, head).then((conn) => { conn.subscribe('all'); count++ }, () => {})
    })
    server.listen(0, '127.0.0.1', 4096)
    await new Promise((resolve) => server.once('listening', resolve))
    port = (server.address() as AddressInfo).port
    send = (burst) => { for (let i = 0; i < burst; i++) hub.publish('all', text).catch(() => {}) }
  }
  process.on('message', (command: CostCommand) => {
    if (command.op === 'go') send(command.burst)
    const { user, system } = process.cpuUsage()
    process.send!({ connections: count, userUs: user, systemUs: system } satisfies CostReply)
  })
  process.send!({ port })
}

process.on('disconnect', () => process.exit(0))
main().catch((err: unknown) => {
  console.error('fanout-cost server failed:', err)
  process.exit(1)
})
