// TopicBus over Redis pub/sub with the official node-redis client, on one Redis or a Redis
// Cluster: envelopes, the subscriptions the Hub wants, and the bounds on publishes live here, the
// connections in node-connections.ts and cluster-connections.ts.
import type { BusDelivery, BusLogger, BusMessage, TopicBus } from './bus.js'
import { ClusterConnections } from './cluster-connections.js'
import { decodeEnvelope, encodeEnvelope, HEADER_LENGTH, newOrigin } from './envelope.js'
import { NodeConnections } from './node-connections.js'
import type { ConnectionsContext, RedisConnections } from './redis-connections.js'
import { resolveRedisBusOptions, type RedisBusOptions, type ResolvedRedisBusOptions } from './redis-options.js'
import { SubscriptionSync } from './subscription-sync.js'

export type { RedisBusOptions } from './redis-options.js'

/**
 * Bytes of publishes that may wait for Redis at once; past it a publish rejects instead of queueing
 * more (one publish on an empty queue is never refused for its size).
 */
export const MAX_PENDING_PUBLISH_BYTES = 64 * 1024 * 1024

/**
 * A TopicBus over Redis pub/sub: every process using the same Redis or Redis Cluster (and channel
 * prefix) receives each publish at most once, in publish order per publisher and topic, byte for byte.
 */
export class RedisBus implements TopicBus {
  readonly #options: ResolvedRedisBusOptions
  readonly #deliver: BusDelivery
  readonly #log: BusLogger
  readonly #origin = newOrigin()
  readonly #connections: RedisConnections
  readonly #sync: SubscriptionSync
  /** Topics already reported for a malformed envelope, so a foreign app on a channel logs once. */
  readonly #malformedReported = new Set<string>()
  #pendingBytes = 0
  #starting: Promise<void> | undefined
  #closing: Promise<void> | undefined

  /** Checks `options` (throwing TypeError/RangeError) and creates the connections; `ready()` opens them. */
  constructor (options: RedisBusOptions, deliver: BusDelivery, log: BusLogger) {
    this.#options = resolveRedisBusOptions(options)
    this.#deliver = deliver
    this.#log = log
    const context: ConnectionsContext = { options: this.#options, log, restored: () => { this.#sync.resync() } }
    const { source } = this.#options
    this.#connections = 'url' in source || 'client' in source ? new NodeConnections(context) : new ClusterConnections(context)
    this.#sync = new SubscriptionSync(this.#connections, {
      subscribe: (topic) => this.#connections.subscribe(this.#channel(topic), this.#onMessage),
      unsubscribe: (topic) => {
        this.#malformedReported.delete(topic)
        return this.#connections.unsubscribe(this.#channel(topic), this.#onMessage)
      },
      failed: (topic, err) => {
        this.#log.warn({ err, topic, redis: this.#options.name }, 'websocket: pubsub could not change its Redis subscription; retrying when the connection is restored')
      }
    })
  }

  /** Whether this bus uses SSUBSCRIBE/SPUBLISH; known once `ready()` resolved. */
  get sharded (): boolean {
    return this.#connections.sharded
  }

  /** Connects to Redis (every connection, or the cluster and its masters); rejects within `connectTimeout` naming the Redis (without credentials) and why. */
  ready (): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new Error('websocket: pubsub is closed'))
    this.#starting ??= this.#start()
    return this.#starting
  }

  /** Starts receiving `topic`; idempotent, and safe to interleave with `unsubscribe` in any order. */
  subscribe (topic: string): void {
    if (this.#closing === undefined) this.#sync.want(topic, true)
  }

  /** Stops receiving `topic`; idempotent. */
  unsubscribe (topic: string): void {
    this.#sync.want(topic, false)
  }

  /** Sends `message` to every other process subscribed to `topic`; rejects at once when Redis is unavailable. */
  async publish (topic: string, message: BusMessage): Promise<void> {
    if (this.#closing !== undefined) throw new Error('websocket: pubsub is closed')
    if (!this.#connections.canPublish) throw this.#unavailable()
    const size = HEADER_LENGTH + message.data.length
    if (this.#pendingBytes > 0 && this.#pendingBytes + size > MAX_PENDING_PUBLISH_BYTES) {
      throw new Error(`websocket: pubsub publish refused: ${this.#pendingBytes} bytes of publishes already wait for Redis at ${this.#options.name} (limit ${MAX_PENDING_PUBLISH_BYTES})`)
    }
    // Counted until node-redis lets go of the envelope, even when the caller stopped waiting sooner.
    this.#pendingBytes += size
    const sent = this.#connections.publish(this.#channel(topic), encodeEnvelope(this.#origin, message))
    const release = (): void => { this.#pendingBytes -= size }
    sent.then(release, release)
    try {
      await this.#connections.bounded(sent)
    } catch (err) {
      throw this.#unavailable(err)
    }
  }

  /** Unsubscribes, closes its connections (never an app-given client) and leaves no timer behind. */
  close (): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  #channel (topic: string): string {
    return this.#options.channelPrefix + topic
  }

  async #start (): Promise<void> {
    const { connectTimeout, name } = this.#options
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const cause = this.#connections.lastError
        const why = cause === undefined ? '' : `: ${cause.message}`
        reject(new Error(`websocket: pubsub could not connect to Redis at ${name} within ${connectTimeout} ms${why}`, { cause }))
      }, connectTimeout)
    })
    try {
      await Promise.race([this.#connections.open(), timedOut])
    } catch (err) {
      this.#connections.destroy()
      throw err
    } finally {
      clearTimeout(timer)
    }
    this.#sync.resync()
  }

  readonly #onMessage = (envelope: Buffer, channel: Buffer): void => {
    const topic = channel.toString().slice(this.#options.channelPrefix.length)
    if (!this.#sync.wants(topic)) return
    const decoded = decodeEnvelope(this.#origin, envelope)
    if (decoded.kind === 'own') return
    if (decoded.kind === 'malformed') {
      if (this.#malformedReported.has(topic)) return
      this.#malformedReported.add(topic)
      this.#log.warn({ topic, channel: channel.toString(), reason: decoded.reason }, 'websocket: pubsub ignored a message it did not publish (another app on this Redis channel?); further ones on this topic are ignored silently')
      return
    }
    try {
      this.#deliver(topic, decoded.message)
    } catch (err) {
      this.#log.error({ err, topic }, 'websocket: pubsub delivery threw')
    }
  }

  #unavailable (cause?: unknown): Error {
    const why = cause instanceof Error ? `: ${cause.message}` : ''
    return new Error(`websocket: pubsub cannot publish: Redis at ${this.#options.name} is unavailable${why}`, { cause })
  }

  async #shutdown (): Promise<void> {
    this.#sync.clear()
    await this.#connections.close()
  }
}
