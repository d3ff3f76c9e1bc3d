import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdapter } from '@socket.io/redis-adapter'
import { createClient } from 'redis'
import { Server } from 'socket.io'
import { packageVersion } from '../shared/versions.js'
import { MESSAGE_EVENT, PUBLISH_EVENT, TOPIC, type FanoutServer } from './protocol.js'

/**
 * Socket.IO as its documentation scales it out: `@socket.io/redis-adapter` over two `redis`
 * clients, every socket joined to one room, and the publisher's event re-emitted to the room
 * with `io.to(room).emit`, which reaches the room in every process through Redis.
 */
export async function startSocketIo (redisUrl: string): Promise<FanoutServer> {
  const pub = createClient({ url: redisUrl })
  const sub = pub.duplicate()
  await Promise.all([pub.connect(), sub.connect()])
  const http = createServer()
  const io = new Server(http, {
    adapter: createAdapter(pub, sub),
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false
  })
  io.on('connection', (socket) => {
    if (socket.handshake.query.role === 'publisher') {
      socket.on(PUBLISH_EVENT, (data: unknown) => { io.to(TOPIC).emit(MESSAGE_EVENT, data) })
    } else {
      socket.join(TOPIC)
    }
  })
  await new Promise<void>((resolve) => http.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, resolve))
  return {
    port: (http.address() as AddressInfo).port,
    impl: `socket.io ${packageVersion('socket.io')} + @socket.io/redis-adapter ${packageVersion('@socket.io/redis-adapter')}, redis ${packageVersion('redis')}, on ws ${packageVersion('ws')} + bufferutil ${packageVersion('bufferutil')}`,
    subscribers: () => io.of('/').adapter.rooms.get(TOPIC)?.size ?? 0,
    close: async () => {
      await io.close()
      await Promise.allSettled([pub.quit(), sub.quit()])
    }
  }
}
