// RedisBus's connections to one Redis: two of them, since a subscribed connection cannot publish,
// and keeping publishes off it keeps one slow path from delaying the other.
import { reconnectDelay, RedisLink, type LinkEvents } from './redis-link.js'
import type { RedisClient } from './redis-options.js'
import { loadNodeRedis, supportsSharded, type ChannelListener, type ConnectionsContext, type RedisConnections } from './redis-connections.js'

/** How far apart the two connections' losses may be and still count as one Redis outage. */
const OUTAGE_WINDOW_MS = 1000

/** A publisher and a subscriber connection to one Redis, reconnecting by themselves. */
export class NodeConnections implements RedisConnections {
  readonly #context: ConnectionsContext
  readonly #publisher: RedisLink
  readonly #subscriber: RedisLink
  /** The publisher with a timeout that covers the wait for the reply too, so a silently dead connection cannot hold publishes until TCP notices. */
  readonly #publishClient: RedisClient
  #sharded = false

  constructor (context: ConnectionsContext) {
    this.#context = context
    const events: LinkEvents = {
      lost: (link, cause) => { this.#onLost(link, cause) },
      restored: (link) => { this.#onRestored(link) },
      /* c8 ignore next 3 -- node-redis emits errors on a live connection only for replies it cannot decode, which a real server does not send */
      failed: (link, err) => {
        context.log.error({ err, redis: context.options.name, connection: link.role }, 'websocket: pubsub Redis connection error')
      }
    }
    this.#publisher = new RedisLink(this.#createClient(), 'publisher', events)
    this.#subscriber = new RedisLink(this.#createClient(), 'subscriber', events)
    this.#publishClient = this.#publisher.client.withCommandOptions({ timeout: context.options.connectTimeout, rejectInFlight: true }) as unknown as RedisClient
  }

  get sharded (): boolean {
    return this.#sharded
  }

  get isUp (): boolean {
    return this.#subscriber.isUp
  }

  get canPublish (): boolean {
    return this.#publisher.isUp
  }

  get lastError (): Error | undefined {
    return this.#publisher.lastError ?? this.#subscriber.lastError
  }

  async open (): Promise<void> {
    const { name, sharded } = this.#context.options
    await Promise.all([this.#publisher.client.connect(), this.#subscriber.client.connect()])
    if (sharded === false) return
    const supported = await supportsSharded(this.#publisher.client)
    if (sharded === true && !supported) {
      throw new Error(`websocket: option pubsub.redis.sharded is true but Redis at ${name} has no sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7)`)
    }
    this.#sharded = supported
  }

  publish (channel: string, envelope: Buffer): Promise<unknown> {
    return this.#sharded ? this.#publishClient.sPublish(channel, envelope) : this.#publishClient.publish(channel, envelope)
  }

  // The command timeout (with rejectInFlight) bounds every publish already.
  bounded (sent: Promise<unknown>): Promise<unknown> {
    return sent
  }

  subscribe (channel: string, listener: ChannelListener): Promise<void> {
    const { client } = this.#subscriber
    return this.#sharded ? client.sSubscribe(channel, listener, true) : client.subscribe(channel, listener, true)
  }

  unsubscribe (channel: string, listener: ChannelListener): Promise<void> {
    const { client } = this.#subscriber
    return this.#sharded ? client.sUnsubscribe(channel, listener, true) : client.unsubscribe(channel, listener, true)
  }

  async close (): Promise<void> {
    await Promise.all([this.#closeLink(this.#subscriber), this.#closeLink(this.#publisher)])
  }

  destroy (): void {
    for (const { client } of [this.#publisher, this.#subscriber]) {
      if (client.isOpen) client.destroy()
    }
  }

  #createClient (): RedisClient {
    const { source, connectTimeout } = this.#context.options
    const socket = { connectTimeout, reconnectStrategy: reconnectDelay }
    if ('url' in source) return loadNodeRedis().createClient({ url: source.url, disableOfflineQueue: true, socket })
    const app = (source as { client: unknown }).client as RedisClient
    return app.duplicate({ disableOfflineQueue: true, socket: { ...app.options?.socket, ...socket } })
  }

  #onLost (link: RedisLink, cause: Error): void {
    const effect = link === this.#publisher
      ? 'publishes fail until it is back'
      : 'messages from other processes are not received until it is back'
    this.#context.log.warn({ err: cause, redis: this.#context.options.name, connection: link.role }, `websocket: pubsub lost its Redis ${link.role} connection; ${effect}`)
  }

  #onRestored (link: RedisLink): void {
    const fields = { redis: this.#context.options.name, connection: link.role }
    if (link === this.#subscriber) {
      this.#context.restored()
      // Redis going away takes both connections within moments of each other; when the publisher
      // stayed up throughout, Redis closed the subscriber alone, and for pub/sub that is what its
      // output-buffer limit does to a subscriber that reads too slowly.
      const publisherLostToo = this.#publisher.lostAt >= this.#subscriber.lostAt - OUTAGE_WINDOW_MS
      if (this.#publisher.isUp && !publisherLostToo) {
        this.#context.log.warn(fields, 'websocket: pubsub Redis closed the subscriber connection while the server stayed reachable, most likely because this process read too slowly and exceeded Redis\'s client-output-buffer-limit for pubsub; resubscribed, but messages published meanwhile were lost (raise the limit or keep the event loop free)')
        return
      }
    }
    this.#context.log.info(fields, `websocket: pubsub Redis ${link.role} connection restored; messages published while it was down were not delivered (at-most-once)`)
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
    const stalled = new Promise<boolean>((resolve) => { timer = setTimeout(resolve, this.#context.options.connectTimeout, false) })
    const unsubscribe = link === this.#subscriber && client.isPubSubActive
      ? (this.#sharded ? client.sUnsubscribe() : client.unsubscribe())
      : Promise.resolve()
    const closed = unsubscribe.then(() => client.close()).then(() => true, () => true)
    const inTime = await Promise.race([closed, stalled])
    clearTimeout(timer)
    // A client still draining after a stall already says it is not open: destroy() ends its socket
    // all the same (and does nothing to one that closed).
    if (!inTime || client.isOpen) client.destroy()
  }
}
