// TopicBus over Redis pub/sub with the official node-redis client. Two connections: a subscribed
// connection cannot publish, and keeping publishes off it keeps one slow path from delaying the other.
import type * as NodeRedis from 'redis'
import type { BusDelivery, BusLogger, BusMessage, TopicBus } from './bus.js'
import { decodeEnvelope, encodeEnvelope, HEADER_LENGTH, newOrigin } from './envelope.js'
import { reconnectDelay, RedisLink, type LinkEvents } from './redis-link.js'
import { resolveRedisBusOptions, type RedisBusOptions, type RedisClient, type ResolvedRedisBusOptions } from './redis-options.js'
import { SubscriptionSync } from './subscription-sync.js'

export type { RedisBusOptions } from './redis-options.js'

/**
 * Bytes of publishes that may wait for Redis at once; past it a publish rejects instead of queueing
 * more (one publish on an empty queue is never refused for its size).
 */
export const MAX_PENDING_PUBLISH_BYTES = 64 * 1024 * 1024

/** How far apart the two connections' losses may be and still count as one Redis outage. */
const OUTAGE_WINDOW_MS = 1000

/**
 * A TopicBus over Redis pub/sub: every process using the same Redis (and channel prefix) receives
 * each publish at most once, in publish order per publisher and topic, byte for byte.
 */
export class RedisBus implements TopicBus {
  readonly #options: ResolvedRedisBusOptions
  readonly #deliver: BusDelivery
  readonly #log: BusLogger
  readonly #origin = newOrigin()
  readonly #publisher: RedisLink
  readonly #subscriber: RedisLink
  readonly #sync: SubscriptionSync
  /** The publisher with a timeout that covers the wait for the reply too, so a silently dead connection cannot hold publishes until TCP notices. */
  readonly #publishClient: RedisClient
  /** Topics already reported for a malformed envelope, so a foreign app on a channel logs once. */
  readonly #malformedReported = new Set<string>()
  #sharded = false
  #pendingBytes = 0
  #starting: Promise<void> | undefined
  #closing: Promise<void> | undefined

  /** Checks `options` (throwing TypeError/RangeError) and creates the connections; `ready()` opens them. */
  constructor (options: RedisBusOptions, deliver: BusDelivery, log: BusLogger) {
    this.#options = resolveRedisBusOptions(options)
    this.#deliver = deliver
    this.#log = log
    const events: LinkEvents = {
      lost: (link, cause) => { this.#onLost(link, cause) },
      restored: (link) => { this.#onRestored(link) },
      /* c8 ignore next 3 -- node-redis emits errors on a live connection only for replies it cannot decode, which a real server does not send */
      failed: (link, err) => {
        this.#log.error({ err, redis: this.#options.name, connection: link.role }, 'websocket: pubsub Redis connection error')
      }
    }
    this.#publisher = new RedisLink(this.#createClient(), 'publisher', events)
    this.#subscriber = new RedisLink(this.#createClient(), 'subscriber', events)
    this.#publishClient = this.#publisher.client.withCommandOptions({ timeout: this.#options.connectTimeout, rejectInFlight: true }) as unknown as RedisClient
    this.#sync = new SubscriptionSync(this.#subscriber, {
      subscribe: (topic) => this.#sharded
        ? this.#subscriber.client.sSubscribe(this.#channel(topic), this.#onMessage, true)
        : this.#subscriber.client.subscribe(this.#channel(topic), this.#onMessage, true),
      unsubscribe: (topic) => {
        this.#malformedReported.delete(topic)
        return this.#sharded
          ? this.#subscriber.client.sUnsubscribe(this.#channel(topic), this.#onMessage, true)
          : this.#subscriber.client.unsubscribe(this.#channel(topic), this.#onMessage, true)
      },
      failed: (topic, err) => {
        this.#log.warn({ err, topic, redis: this.#options.name }, 'websocket: pubsub could not change its Redis subscription; retrying when the connection is restored')
      }
    })
  }

  /** Whether this bus uses SSUBSCRIBE/SPUBLISH; known once `ready()` resolved. */
  get sharded (): boolean {
    return this.#sharded
  }

  /** Connects both connections; rejects within `connectTimeout` naming the Redis (without credentials) and why. */
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
    if (!this.#publisher.isUp) throw this.#unavailable()
    const size = HEADER_LENGTH + message.data.length
    if (this.#pendingBytes > 0 && this.#pendingBytes + size > MAX_PENDING_PUBLISH_BYTES) {
      throw new Error(`websocket: pubsub publish refused: ${this.#pendingBytes} bytes of publishes already wait for Redis at ${this.#options.name} (limit ${MAX_PENDING_PUBLISH_BYTES})`)
    }
    this.#pendingBytes += size
    try {
      const channel = this.#channel(topic)
      const envelope = encodeEnvelope(this.#origin, message)
      await (this.#sharded ? this.#publishClient.sPublish(channel, envelope) : this.#publishClient.publish(channel, envelope))
    } catch (err) {
      throw this.#unavailable(err)
    } finally {
      this.#pendingBytes -= size
    }
  }

  /** Unsubscribes, closes both connections (never an app-given client) and leaves no timer behind. */
  close (): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  #createClient (): RedisClient {
    const { source, connectTimeout } = this.#options
    const socket = { connectTimeout, reconnectStrategy: reconnectDelay }
    if ('url' in source) return loadNodeRedis().createClient({ url: source.url, disableOfflineQueue: true, socket })
    const app = source.client as unknown as RedisClient
    return app.duplicate({ disableOfflineQueue: true, socket: { ...app.options?.socket, ...socket } })
  }

  #channel (topic: string): string {
    return this.#options.channelPrefix + topic
  }

  async #start (): Promise<void> {
    const { connectTimeout, name } = this.#options
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const cause = this.#publisher.lastError ?? this.#subscriber.lastError
        const why = cause === undefined ? '' : `: ${cause.message}`
        reject(new Error(`websocket: pubsub could not connect to Redis at ${name} within ${connectTimeout} ms${why}`, { cause }))
      }, connectTimeout)
    })
    try {
      await Promise.race([this.#connect(), timedOut])
    } catch (err) {
      this.#destroy()
      throw err
    } finally {
      clearTimeout(timer)
    }
    this.#sync.resync()
  }

  async #connect (): Promise<void> {
    await Promise.all([this.#publisher.client.connect(), this.#subscriber.client.connect()])
    if (this.#options.sharded === false) return
    const supported = await this.#supportsSharded()
    if (this.#options.sharded === true && !supported) {
      throw new Error(`websocket: option pubsub.redis.sharded is true but Redis at ${this.#options.name} has no sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7)`)
    }
    this.#sharded = supported
  }

  // Asks for the commands rather than the version: a server may rename or disable commands.
  async #supportsSharded (): Promise<boolean> {
    try {
      const info = await this.#publisher.client.sendCommand(['COMMAND', 'INFO', 'SPUBLISH', 'SSUBSCRIBE'])
      return Array.isArray(info) && info.every((entry) => Array.isArray(entry))
    } catch {
      return false // COMMAND itself disabled: assume the oldest
    }
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

  #onLost (link: RedisLink, cause: Error): void {
    const effect = link === this.#publisher
      ? 'publishes fail until it is back'
      : 'messages from other processes are not received until it is back'
    this.#log.warn({ err: cause, redis: this.#options.name, connection: link.role }, `websocket: pubsub lost its Redis ${link.role} connection; ${effect}`)
  }

  #onRestored (link: RedisLink): void {
    const fields = { redis: this.#options.name, connection: link.role }
    if (link === this.#subscriber) {
      this.#sync.resync()
      // Redis going away takes both connections within moments of each other; when the publisher
      // stayed up throughout, Redis closed the subscriber alone, and for pub/sub that is what its
      // output-buffer limit does to a subscriber that reads too slowly.
      const publisherLostToo = this.#publisher.lostAt >= this.#subscriber.lostAt - OUTAGE_WINDOW_MS
      if (this.#publisher.isUp && !publisherLostToo) {
        this.#log.warn(fields, 'websocket: pubsub Redis closed the subscriber connection while the server stayed reachable, most likely because this process read too slowly and exceeded Redis\'s client-output-buffer-limit for pubsub; resubscribed, but messages published meanwhile were lost (raise the limit or keep the event loop free)')
        return
      }
    }
    this.#log.info(fields, `websocket: pubsub Redis ${link.role} connection restored; messages published while it was down were not delivered (at-most-once)`)
  }

  #unavailable (cause?: unknown): Error {
    const why = cause instanceof Error ? `: ${cause.message}` : ''
    return new Error(`websocket: pubsub cannot publish: Redis at ${this.#options.name} is unavailable${why}`, { cause })
  }

  async #shutdown (): Promise<void> {
    this.#sync.clear()
    await Promise.all([this.#closeLink(this.#subscriber), this.#closeLink(this.#publisher)])
  }

  async #closeLink (link: RedisLink): Promise<void> {
    const client = link.client
    if (!client.isOpen) return
    if (!client.isReady) {
      client.destroy()
      return
    }
    let timer: NodeJS.Timeout | undefined
    // A graceful close waits for pending replies; a Redis that stops answering must not hold close().
    const stalled = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#options.connectTimeout) })
    const unsubscribe = link === this.#subscriber && client.isPubSubActive
      ? (this.#sharded ? client.sUnsubscribe() : client.unsubscribe())
      : Promise.resolve()
    await Promise.race([unsubscribe.then(() => client.close()), stalled]).catch(() => {})
    clearTimeout(timer)
    if (client.isOpen) client.destroy()
  }

  #destroy (): void {
    for (const { client } of [this.#publisher, this.#subscriber]) {
      if (client.isOpen) client.destroy()
    }
  }
}

let nodeRedis: typeof NodeRedis | undefined

/**
 * The redis package, loaded on first use: it takes about 300 ms to load, which an app that never
 * uses Redis (or a process that only imports fastify-wsconn) should not pay.
 */
function loadNodeRedis (): typeof NodeRedis {
  // A lazy load: import() would make client creation async.
  nodeRedis ??= require('redis') as typeof NodeRedis
  return nodeRedis
}
