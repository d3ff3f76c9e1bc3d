import { createServer, type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import { ignore, type BenchServer, type ServerSettings } from './types.js'

/**
 * The ceiling: a bare `net` server echoing every chunk, or writing the payload to every socket.
 * With BENCH_TCP_JOIN=BYTES it joins every BYTES received into one Buffer before echoing them,
 * which prices the join any API handing over whole messages pays (the generator sends bare
 * payloads of the scenario's size to raw TCP, so BYTES is that size).
 */
export async function startTcp (settings: ServerSettings): Promise<BenchServer> {
  const joinBytes = Number(process.env.BENCH_TCP_JOIN ?? 0)
  const sockets = new Set<Socket>()
  const broadcast = (): void => {
    for (const socket of sockets) socket.write(settings.broadcastPayload)
  }
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.on('error', ignore)
    socket.on('close', () => sockets.delete(socket))
    if (settings.mode === 'broadcast') socket.on('data', broadcast)
    else if (joinBytes > 0) socket.on('data', joiner(socket, joinBytes))
    else socket.on('data', (chunk) => socket.write(chunk))
  })
  server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  await once(server, 'listening')
  const impl = joinBytes > 0 ? `node:net echo, joining every ${joinBytes} B into one Buffer (BENCH_TCP_JOIN)` : 'node:net echo'
  const close = (): void => {
    server.close()
    for (const socket of sockets) socket.destroy()
  }
  return { port: (server.address() as AddressInfo).port, impl, connections: () => sockets.size, close }
}

/**
 * Echoes `socket`'s input in blocks of `size` bytes, each joined into one Buffer first (as a
 * message API joins a message's pieces; one that arrived in a single read is not copied).
 */
function joiner (socket: Socket, size: number): (chunk: Buffer) => void {
  let pieces: Buffer[] = []
  let held = 0
  return (chunk) => {
    pieces.push(chunk)
    held += chunk.length
    while (held >= size) {
      const joined = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, held)
      socket.write(joined.subarray(0, size))
      const rest = joined.subarray(size)
      pieces = rest.length > 0 ? [rest] : []
      held = rest.length
    }
  }
}
