import type { AddressInfo } from 'node:net'
import Fastify, { type RouteOptions } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'
import { packageVersion } from '../shared/versions.js'
import { wsDescription } from './ws.js'
import { ignore, type BenchServer, type ServerSettings } from './types.js'

// Loaded through a computed specifier so that @fastify/websocket's global type augmentation of
// Fastify's route options stays out of the project's type program (ours augments the same option).
const PLUGIN = '@fastify/websocket'

/** @fastify/websocket on Fastify, with the echo written the way its README does. */
export async function startFastifyWebsocket (settings: ServerSettings): Promise<BenchServer> {
  const plugin = ((await import(PLUGIN)) as { default: unknown }).default
  const app = Fastify({ logger: false })
  await app.register(plugin as Parameters<typeof app.register>[0], {
    options: { perMessageDeflate: settings.compress ? { threshold: 0 } : false }
  })
  const server = (): WebSocketServer => (app as unknown as { websocketServer: WebSocketServer }).websocketServer
  const handler = (socket: WebSocket): void => {
    socket.on('error', ignore)
    if (settings.mode === 'broadcast') {
      socket.on('message', () => {
        for (const client of server().clients) client.send(settings.broadcastPayload, { binary: false })
      })
    } else {
      socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }))
    }
  }
  app.route({ method: 'GET', url: '/', websocket: true, handler } as unknown as RouteOptions)
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  return {
    port: (app.server.address() as AddressInfo).port,
    impl: `@fastify/websocket ${packageVersion('@fastify/websocket')} on fastify ${app.version}, ${wsDescription()}`,
    connections: () => server().clients.size
  }
}
