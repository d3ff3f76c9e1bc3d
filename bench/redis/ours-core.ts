import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import type { Duplex } from 'node:stream'
import Fastify from 'fastify'
import type { Conn } from '../../lib/conn/conn.js'
import type { Hub } from '../../lib/hub/hub.js'
import type { BusDelivery, BusLogger, TopicBus } from '../../lib/pubsub/bus.js'
import type { UpgraderOptions } from '../../lib/upgrader.js'
import type { RedisBusOptions } from '../../lib/pubsub/redis-options.js'
import { loadOurs } from '../servers/ours-runtime.js'
import { packageVersion } from '../shared/versions.js'
import { subscriber } from './ours.js'
import { PUBLISHER_PATH, TOPIC, type FanoutServer } from './protocol.js'

type RedisBusClass = new (options: RedisBusOptions, deliver: BusDelivery, log: BusLogger) => TopicBus & { readonly sharded: boolean }

const QUIET: BusLogger = { info: () => {}, warn: () => {}, error: (obj, msg) => { console.error(msg, obj) } }

/**
 * Ours without the plugin's `pubsub` option, for a plugin that does not have it yet: the same
 * Hub and RedisBus the option wires, with the Upgrader on Fastify's 'upgrade' event. Subscribers
 * and the publisher behave as in ours.ts; publishes go through `hub.publish`.
 */
export async function startOursCore (redisUrl: string, why: string): Promise<FanoutServer> {
  const ours = await loadOurs()
  const root = process.env.BENCH_OURS_ROOT ?? path.join(__dirname, '..', '..', 'lib')
  const { RedisBus } = await import(path.join(root, 'pubsub', 'redis-bus.js')) as { RedisBus: RedisBusClass }
  // The bus delivers only for topics the hub subscribed, so never before `hub` exists.
  const bus = new RedisBus({ url: redisUrl }, (topic, message) => hub.deliverFromBus(topic, message), QUIET)
  const hub: Hub = new ours.Hub({ bus })
  await bus.ready()
  let failures = 0
  const upgrader = new ours.Upgrader({ hub } as UpgraderOptions)
  const app = Fastify({ logger: false })
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const publisher = req.url === PUBLISHER_PATH
    upgrader.upgrade(req, socket, head).then((conn) => publisher ? publish(conn) : subscriber(conn), () => {})
  })
  const publish = async (conn: Conn): Promise<void> => {
    try {
      for await (const message of conn) hub.publish(TOPIC, message.data.toString()).catch(() => { failures++ })
    } catch {
      conn.terminate()
    }
  }
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  return {
    port: (app.server.address() as AddressInfo).port,
    impl: `Hub + RedisBus (${bus.sharded ? 'sharded' : 'classic'} pub/sub) and Upgrader from ${ours.source} on fastify ${app.version}, redis ${packageVersion('redis')} (${why})`,
    subscribers: () => {
      if (failures > 0) throw new Error(`${failures} publishes failed`)
      return hub.subscriberCount(TOPIC)
    },
    close: async () => {
      await app.close()
      await hub.close()
    }
  }
}
