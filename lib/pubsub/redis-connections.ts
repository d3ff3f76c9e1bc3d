// The seam between RedisBus (envelopes, subscriptions wanted, bounds on publishes) and the
// node-redis connections that carry them: two connections to one Redis (node-connections.ts) or
// one cluster client (cluster-connections.ts).
import type * as NodeRedis from 'redis'
import type { BusLogger } from './bus.js'
import type { ResolvedRedisBusOptions } from './redis-options.js'

/** Receives one pub/sub message, payload and channel as Buffers. */
export type ChannelListener = (message: Buffer, channel: Buffer) => void

/** What the connections need from the bus that owns them. */
export interface ConnectionsContext {
  readonly options: ResolvedRedisBusOptions
  readonly log: BusLogger
  /** A connection came back after a loss: the bus brings its subscriptions in line again. */
  restored (): void
}

/** The Redis connections of one RedisBus. */
export interface RedisConnections {
  /** Whether SSUBSCRIBE/SPUBLISH are used; known once `open()` resolved. */
  readonly sharded: boolean
  /** Whether subscription commands can be sent now. */
  readonly isUp: boolean
  /** Whether a publish can be attempted now; false means it would fail, so the bus rejects at once. */
  readonly canPublish: boolean
  /** Why the last connection attempt failed, for the startup error. */
  readonly lastError: Error | undefined
  /** Connects; the bus bounds the wait and calls `destroy()` when it gives up. */
  open (): Promise<void>
  /** Sends one envelope; may take as long as Redis does (see `bounded`). */
  publish (channel: string, envelope: Buffer): Promise<unknown>
  /** Settles no later than `options.connectTimeout` after the publish began, whether `sent` did or not. */
  bounded (sent: Promise<unknown>): Promise<unknown>
  subscribe (channel: string, listener: ChannelListener): Promise<void>
  unsubscribe (channel: string, listener: ChannelListener): Promise<void>
  /** Closes every connection, waiting at most `options.connectTimeout` for Redis to answer. */
  close (): Promise<void>
  /** Closes every connection at once. */
  destroy (): void
}

/** Asks a Redis node whether it has sharded pub/sub: asks for the commands rather than the version, since a server may rename or disable commands. */
export async function supportsSharded (client: { sendCommand: (args: string[]) => Promise<unknown> }): Promise<boolean> {
  try {
    const info = await client.sendCommand(['COMMAND', 'INFO', 'SPUBLISH', 'SSUBSCRIBE'])
    return Array.isArray(info) && info.every((entry) => Array.isArray(entry))
  } catch {
    return false // COMMAND itself disabled: assume the oldest
  }
}

let nodeRedis: typeof NodeRedis | undefined

/**
 * The redis package, loaded on first use: it takes about 300 ms to load, which an app that never
 * uses Redis (or a process that only imports fastify-wsconn) should not pay.
 */
export function loadNodeRedis (): typeof NodeRedis {
  // A lazy load: import() would make client creation async.
  nodeRedis ??= require('redis') as typeof NodeRedis
  return nodeRedis
}
