// One of RedisBus's two connections (publisher, subscriber) and what the bus's logs need to know
// about its health: node-redis reconnects by itself, this only keeps track of it.
import type { RedisClient } from './redis-options.js'

/** Delay before reconnect attempt `retries` (0-based): doubling from 50 ms up to 2 s, with jitter so processes do not all reconnect at once. */
export function reconnectDelay (retries: number): number {
  return Math.min(50 * 2 ** retries, 2000) + Math.floor(Math.random() * 50)
}

/** Events of a link's life that the bus reports. */
export interface LinkEvents {
  /** The connection was up and went down; node-redis is now reconnecting. */
  lost (link: RedisLink, cause: Error): void
  /** The connection is back up after a loss (node-redis has resubscribed what it knew of). */
  restored (link: RedisLink): void
  /** An error that did not take the connection down (e.g. a protocol error on one reply). */
  failed (link: RedisLink, err: Error): void
}

/** Tracks whether one node-redis client is up, why it last failed, and how many times it was lost. */
export class RedisLink {
  readonly client: RedisClient
  readonly role: 'publisher' | 'subscriber'
  /** Why the last connection attempt or the connection failed, for the startup error. */
  lastError: Error | undefined
  /** How many times the connection was lost after having been up. */
  losses = 0
  /** When (performance.now()) the connection was last lost; -Infinity before any loss. */
  lostAt = -Infinity
  #wasUp = false

  constructor (client: RedisClient, role: 'publisher' | 'subscriber', events: LinkEvents) {
    this.client = client
    this.role = role
    client.on('error', (err: Error) => {
      this.lastError = err
      /* c8 ignore start -- node-redis emits errors on a live connection only for replies it cannot decode, which a real server does not send */
      if (client.isReady) {
        events.failed(this, err)
        return
      }
      /* c8 ignore stop */
      if (this.#wasUp) {
        this.#wasUp = false
        this.losses++
        this.lostAt = performance.now()
        events.lost(this, err)
      }
      // Otherwise a (re)connect attempt failed: reported by ready() at startup, and only once per
      // outage afterwards, by the loss above.
    })
    client.on('ready', () => {
      const reconnect = this.losses > 0
      this.#wasUp = true
      if (reconnect) events.restored(this)
    })
  }

  /** Whether commands can be sent now. */
  get isUp (): boolean {
    return this.client.isReady
  }
}
