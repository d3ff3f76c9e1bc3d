import { createServer, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Conn } from '../../lib/conn/conn.js'
import type { UpgraderOptions } from '../../lib/upgrader.js'
import { loadOurs } from './ours-runtime.js'
import { ignore, type BenchServer, type ServerSettings } from './types.js'
import { READ_LIMIT, broadcastOnMessage, echo } from './wsconn.js'

/**
 * Ours without Fastify: a bare `Upgrader` on a node:http server's 'upgrade' event, as in
 * examples/echo.ts, with the same options and echo as the plugin route of wsconn.ts, so the two
 * rows differ only by the plugin layer.
 */
export async function startWsconnBare (settings: ServerSettings): Promise<BenchServer> {
  const ours = await loadOurs()
  const conns = new Set<Conn>()
  const options = { readLimit: READ_LIMIT, hub: new ours.Hub(), ...(settings.compress ? { compression: { threshold: 0 } } : {}) }
  const upgrader = new ours.Upgrader(options as UpgraderOptions)
  const server = createServer((_req, res) => {
    res.writeHead(426, { upgrade: 'websocket' })
    res.end()
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrader.upgrade(req, socket, head).then((conn) => {
      conns.add(conn)
      conn.closed.then(() => conns.delete(conn), ignore)
      if (settings.mode === 'broadcast') broadcastOnMessage(conn, settings.broadcastPayload).catch(ignore)
      else echo(conn).catch(ignore)
    }, ignore)
  })
  server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, impl: `bare Upgrader from ${ours.source} on node:http 'upgrade'`, connections: () => conns.size }
}
