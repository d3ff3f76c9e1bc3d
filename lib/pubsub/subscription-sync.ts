// Keeps the topics subscribed in Redis equal to the topics the Hub wants, whatever order
// subscribe and unsubscribe come in and whenever the connection drops. Each topic has at most one
// Redis command in flight; when it settles, the topic is compared again, so a subscribe, an
// unsubscribe and a subscribe in a row end subscribed with no command racing another.
import type { RedisLink } from './redis-link.js'

/** The Redis side of one topic's subscription. */
export interface SubscriptionOps {
  subscribe (topic: string): Promise<void>
  unsubscribe (topic: string): Promise<void>
  /** A command failed while the connection stayed up (e.g. an ACL refusing the channel). */
  failed (topic: string, err: unknown): void
}

/** Reconciles wanted topics with Redis subscriptions, one command per topic at a time. */
export class SubscriptionSync {
  readonly #link: Pick<RedisLink, 'isUp'>
  readonly #ops: SubscriptionOps
  /** Topics the Hub has local subscribers for. */
  readonly #wanted = new Set<string>()
  /** Topics Redis confirmed subscribed (node-redis resubscribes these itself after a reconnect). */
  readonly #subscribed = new Set<string>()
  /** Topics with a command in flight. */
  readonly #busy = new Set<string>()
  #closed = false

  constructor (link: Pick<RedisLink, 'isUp'>, ops: SubscriptionOps) {
    this.#link = link
    this.#ops = ops
  }

  /** Records whether `topic` is wanted and brings Redis in line (now, or when the connection is up). */
  want (topic: string, wanted: boolean): void {
    if (wanted) this.#wanted.add(topic)
    else this.#wanted.delete(topic)
    this.#reconcile(topic)
  }

  /** Whether `topic` is wanted: messages on other topics are stragglers of a finished subscription. */
  wants (topic: string): boolean {
    return this.#wanted.has(topic)
  }

  /** Brings every topic in line; run when the connection is (back) up. */
  resync (): void {
    for (const topic of new Set([...this.#wanted, ...this.#subscribed])) this.#reconcile(topic)
  }

  /** Forgets every topic and sends no further commands (the connection is being closed). */
  clear (): void {
    this.#closed = true
    this.#wanted.clear()
  }

  // Never rejects: failures are reported through ops.failed or redone by resync().
  async #reconcile (topic: string): Promise<void> {
    // A busy topic is compared again when its command settles; a down link is resynced when it is up.
    if (this.#closed || this.#busy.has(topic) || !this.#link.isUp) return
    this.#busy.add(topic)
    try {
      for (;;) {
        const wanted = this.#wanted.has(topic)
        if (this.#closed || wanted === this.#subscribed.has(topic)) break
        if (wanted) {
          await this.#ops.subscribe(topic)
          this.#subscribed.add(topic)
        } else {
          await this.#ops.unsubscribe(topic)
          this.#subscribed.delete(topic)
        }
      }
    } catch (err) {
      // A command lost with the connection is redone by resync() when it is restored.
      if (this.#link.isUp) this.#ops.failed(topic, err)
    } finally {
      this.#busy.delete(topic)
    }
  }
}
