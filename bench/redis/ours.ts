import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { Conn } from '../../lib/conn/conn.js'
import { loadOurs } from '../servers/ours-runtime.js'
import { packageVersion } from '../shared/versions.js'
import { PUBLISHER_PATH, TOPIC, type FanoutServer } from './protocol.js'

/** The decorations this server uses (typed here: the plugin is loaded at run time from the tsc build). */
interface Publishing {
  websocketPublish: (topic: string, data: string) => Promise<unknown>
  websocketSubscriberCount: (topic: string) => number
}

/**
 * Ours as an application scaling out would write it: the plugin with `pubsub: { redis: { url } }`,
 * every connection on `/` subscribed to one topic, and each message of the publisher connection
 * published as it came (text stays text) with `app.websocketPublish`, which delivers it here and,
 * through Redis, in every other process.
 */
export async function startOurs (redisUrl: string): Promise<FanoutServer> {
  const ours = await loadOurs()
  if (!('fn' in ours.plugin)) throw new Error(`the plugin cannot be used: ${ours.plugin.error}`)
  const app = Fastify({ logger: false })
  await app.register(ours.plugin.fn as Parameters<FastifyInstance['register']>[0], { pubsub: { redis: { url: redisUrl } } })
  const publishing = app as unknown as Publishing
  let failures = 0
  app.route({ method: 'GET', url: '/', websocket: true, handler: subscriber } as unknown as RouteOptions)
  app.route({
    method: 'GET',
    url: PUBLISHER_PATH,
    websocket: true,
    handler: async (conn: Conn) => {
      try {
        // Not awaited, as Socket.IO's emit is not: the next message is read while Redis is written to.
        for await (const message of conn) publishing.websocketPublish(TOPIC, message.data.toString()).catch(() => { failures++ })
      } catch {
        conn.terminate()
      }
    }
  } as unknown as RouteOptions)
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  return {
    port: (app.server.address() as AddressInfo).port,
    impl: `plugin (export ${ours.plugin.name}) from ${ours.source} with pubsub.redis, redis ${packageVersion('redis')}, on fastify ${app.version}`,
    subscribers: () => {
      if (failures > 0) throw new Error(`${failures} publishes failed`)
      return publishing.websocketSubscriberCount(TOPIC)
    },
    close: () => app.close()
  }
}

/** A subscriber's handler: one topic, and reading until the connection ends. */
async function subscriber (conn: Conn): Promise<void> {
  conn.subscribe(TOPIC)
  try {
    // Reading answers pings and sees the close; subscribers send nothing else.
    for (;;) await conn.readMessage()
  } catch {
    conn.terminate()
  }
}
