import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { packageVersion } from '../shared/versions.js'
import { ignore, type BenchServer, type ServerSettings } from './types.js'

/** Plain `ws` (bufferutil is picked up by ws itself when installed). */
export async function startWs (settings: ServerSettings): Promise<BenchServer> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    backlog: 4096,
    perMessageDeflate: settings.compress ? { threshold: 0 } : false
  })
  wss.on('connection', (socket: WebSocket) => {
    socket.on('error', ignore)
    if (settings.mode === 'broadcast') {
      socket.on('message', () => {
        for (const client of wss.clients) client.send(settings.broadcastPayload, { binary: false })
      })
    } else {
      socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }))
    }
  })
  await once(wss, 'listening')
  return { port: (wss.address() as AddressInfo).port, impl: wsDescription(), connections: () => wss.clients.size }
}

/** Names the ws version and whether its native helpers are there (ws loads bufferutil on its own). */
export function wsDescription (): string {
  const bufferutil = packageVersion('bufferutil')
  const helper = bufferutil === 'missing' || process.env.WS_NO_BUFFER_UTIL !== undefined ? 'without bufferutil' : `+ bufferutil ${bufferutil}`
  return `ws ${packageVersion('ws')} ${helper}`
}
