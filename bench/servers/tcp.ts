import { createServer, type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import { ignore, type BenchServer, type ServerSettings } from './types.js'

/** The ceiling: a bare `net` server echoing every chunk, or writing the payload to every socket. */
export async function startTcp (settings: ServerSettings): Promise<BenchServer> {
  const sockets = new Set<Socket>()
  const broadcast = (): void => {
    for (const socket of sockets) socket.write(settings.broadcastPayload)
  }
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.on('error', ignore)
    socket.on('close', () => sockets.delete(socket))
    if (settings.mode === 'broadcast') socket.on('data', broadcast)
    else socket.on('data', (chunk) => socket.write(chunk))
  })
  server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, impl: 'node:net echo', connections: () => sockets.size }
}
