import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { Conn } from '../../lib/conn/conn.js'
import type { UpgraderOptions } from '../../lib/upgrader.js'
import { loadOurs } from './ours-runtime.js'
import { benchCertificate } from '../shared/tls.js'
import { ignore, type BenchServer, type ServerSettings } from './types.js'

/** ws allows 100 MiB; the plugin's default (1 MiB) would refuse scenario (d)'s frames. */
export const READ_LIMIT = 64 * 1024 * 1024
const BROADCAST_TOPIC = 'broadcast'

/** Which path "ours" takes: the plugin when it can be loaded (auto), or the bare Upgrader. */
export type OursVia = 'auto' | 'plugin' | 'upgrader'

/** This repository on Fastify: through lib/plugin when it exports a plugin, else the Upgrader on 'upgrade'. */
export async function startWsconn (settings: ServerSettings, via: OursVia = 'auto'): Promise<BenchServer> {
  const app = fastifyFor(settings)
  const conns = new Set<Conn>()
  const ours = await loadOurs()
  const handle = (conn: Conn): void => {
    conns.add(conn)
    conn.closed.then(() => conns.delete(conn), ignore)
    if (settings.mode === 'broadcast') broadcastOnMessage(conn, settings.broadcastPayload).catch(ignore)
    else echo(conn).catch(ignore)
  }
  const options = { readLimit: READ_LIMIT, ...(settings.compress ? { compression: { threshold: 0 } } : {}) }
  const plugin = via === 'upgrader' ? { error: 'not requested (--ours=upgrader)' } : ours.plugin
  let impl: string
  if ('fn' in plugin) {
    await app.register(plugin.fn as Parameters<FastifyInstance['register']>[0], options)
    app.route({ method: 'GET', url: '/', websocket: true, handler: handle } as unknown as RouteOptions)
    impl = `plugin (export ${plugin.name}) from ${ours.source} on fastify ${app.version}${protocolNote(settings)}`
  } else {
    if (settings.http2 === true) throw new Error(`--http2 needs the plugin, which cannot be used: ${plugin.error}`)
    if (via === 'plugin') throw new Error(`--ours=plugin but the plugin cannot be used: ${plugin.error}`)
    const upgrader = new ours.Upgrader({ ...options, hub: new ours.Hub() } as UpgraderOptions)
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      upgrader.upgrade(req, socket, head).then(handle, ignore)
    })
    impl = `Upgrader from ${ours.source} on fastify ${app.version} server 'upgrade' (plugin: ${plugin.error})`
  }
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  return { port: (app.server.address() as AddressInfo).port, impl, connections: () => conns.size }
}

/**
 * Fastify over HTTP/1.1 or HTTP/2, cleartext or TLS. Over HTTP/2 with Fastify's defaults, as a
 * user moving an app to HTTP/2 gets them (no tuned windows); over TLS HTTP/2 only (no allowHTTP1).
 */
function fastifyFor (settings: ServerSettings): FastifyInstance {
  const https = settings.tls === true ? benchCertificate() : undefined
  if (settings.http2 === true) return (https === undefined ? Fastify({ logger: false, http2: true }) : Fastify({ logger: false, http2: true, https })) as unknown as FastifyInstance
  return (https === undefined ? Fastify({ logger: false }) : Fastify({ logger: false, https })) as unknown as FastifyInstance
}

function protocolNote (settings: ServerSettings): string {
  if (settings.http2 === true) return settings.tls === true ? ' over HTTP/2 with TLS' : ' over h2c (HTTP/2 cleartext)'
  return settings.tls === true ? ' over HTTPS' : ''
}

/**
 * The echo a user writes: event style with `conn.onMessage` (as ws's is with 'message'), whose
 * returned write holds the next message back only while the socket is over its high-water mark;
 * BENCH_OURS_READ=iterate runs the gorilla-style loop (`for await` + `await writeMessage`) instead.
 */
export async function echo (conn: Conn): Promise<void> {
  try {
    if (process.env.BENCH_OURS_READ === 'iterate') {
      for await (const message of conn) await conn.writeMessage(message.type, message.data)
    } else {
      await conn.onMessage(({ type, data }) => conn.writeMessage(type, data))
    }
  } catch {
    conn.terminate()
  }
}

/** Every connection subscribes to one topic; any message triggers one publish of the payload to it. */
export async function broadcastOnMessage (conn: Conn, payload: Buffer): Promise<void> {
  conn.subscribe(BROADCAST_TOPIC)
  try {
    for (;;) {
      await conn.readMessage()
      // As an application publishes: a string is a text message, framed once for every subscriber.
      conn.publish(BROADCAST_TOPIC, payload.toString()).catch(ignore)
    }
  } catch {
    conn.terminate()
  }
}
