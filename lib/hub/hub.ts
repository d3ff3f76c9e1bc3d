import { isUtf8 } from 'node:buffer'
import { offerPublished, type Conn } from '../conn/conn.js'
import { Admission } from '../conn/write.js'
import { PreparedMessage } from '../prepared-message.js'
import { BinaryMessage, TextMessage } from '../protocol/constants.js'
import { PublishError, UsageError } from '../protocol/errors.js'
import type { Payload } from '../protocol/framing.js'
import type { BusLogger, BusMessage, TopicBus } from '../pubsub/bus.js'
import { noop, rejected } from '../settle.js'
import { checkInteger } from '../option-checks.js'
import { setCatchUp } from './catch-up.js'
import { Topic, type PendingPublish } from './topic.js'

/** What one publish did in this process. */
export interface PublishResult {
  /** Connections that accepted the message. */
  delivered: number
  /** Subscribers over their `maxBufferedAmount` with the `'drop'` policy, which skipped it. */
  dropped: number
  /** Subscribers over their `maxBufferedAmount` with the `'close'` policy, which are being closed (1008). */
  closed: number
}

/** Settings of one publish. */
export interface PublishOptions {
  /** A connection that does not get the message (typically its sender). */
  except?: Conn
}

/** What a Hub can be built with. */
export interface HubOptions {
  /** Carries publishes to and from other processes (see `RedisBus`); without one the hub is local. */
  bus?: TopicBus
  /** Where problems with messages from the bus are reported. Default: nowhere. */
  log?: BusLogger
  /**
   * Subscribers a publish is offered to before the event loop may run again; a topic with more is
   * served over several turns, and publishes arriving meanwhile share its writes. Default
   * FANOUT_SLICE (1024).
   */
  fanoutSlice?: number
}

/** Anything a publish accepts: a string is a text message, bytes a binary one. */
export type PublishData = Payload | PreparedMessage

/** The longest topic name, in UTF-16 code units. */
export const MAX_TOPIC_LENGTH = 1024

const NO_LOG: BusLogger = { info: noop, warn: noop, error: noop }

/** The default `fanoutSlice`: subscribers a publish is offered to before the event loop may run again. */
export const FANOUT_SLICE = 1024

/** Publishes a topic holds for subscribers not yet reached; beyond it a publish finishes the fan-out at once. */
const MAX_PENDING_PUBLISHES = 1024

/**
 * Topics: connections subscribe to names, and a publish frames (and compresses) a message once
 * and offers it to every subscriber under its slow-consumer limit, so one slow subscriber never
 * blocks a publisher. A topic with more than FANOUT_SLICE subscribers is served over several
 * turns of the event loop; publishes that arrive meanwhile leave with the same write to each
 * subscriber. Every connection gets its messages in the order they were published and written.
 * With a bus, publishes also reach the subscribers of other processes, and the topic is subscribed
 * on the bus only while this process has subscribers to it.
 */
export class Hub {
  readonly #topics = new Map<string, Topic>()
  readonly #topicsOf = new Map<Conn, Set<string>>()
  /** Topics with publishes not yet offered to every subscriber. */
  readonly #spreading = new Set<Topic>()
  #nextSeq = 0
  #turnScheduled = false
  #bus: TopicBus | undefined
  readonly #log: BusLogger
  readonly #slice: number
  readonly #forget = (conn: Conn): void => { this.#leaveAll(conn) }

  static {
    setCatchUp((hub, conn) => { if (hub.#spreading.size > 0) hub.#catchUp(conn) })
  }

  constructor (options: HubOptions = {}) {
    this.#bus = options.bus
    this.#log = options.log ?? NO_LOG
    this.#slice = checkInteger('fanoutSlice', options.fanoutSlice ?? FANOUT_SLICE, 1)
  }

  /** Adds `conn` to `topic`'s subscribers; false when it already was one. It leaves by itself when it closes. */
  subscribe (conn: Conn, topic: string): boolean {
    checkTopic(topic)
    let topics = this.#topicsOf.get(conn)
    if (topics === undefined) {
      topics = new Set()
      this.#topicsOf.set(conn, topics)
      const forget = this.#forget
      conn.closed.then(() => { forget(conn) }, noop)
    }
    if (topics.has(topic)) return false
    topics.add(topic)
    let subscribers = this.#topics.get(topic)
    if (subscribers === undefined) {
      subscribers = new Topic()
      this.#topics.set(topic, subscribers)
      this.#bus?.subscribe(topic)
    }
    // Publishes made before it subscribed are not for it, even those still on their way to others.
    subscribers.subscribers.set(conn, this.#nextSeq)
    return true
  }

  /** Removes `conn` from `topic`'s subscribers; false when it was not one. */
  unsubscribe (conn: Conn, topic: string): boolean {
    const topics = this.#topicsOf.get(conn)
    if (topics?.has(topic) !== true) return false
    // What was published while it was subscribed still reaches it.
    if (this.#spreading.size > 0) this.#catchUp(conn)
    topics.delete(topic)
    if (topics.size === 0) this.#topicsOf.delete(conn)
    this.#removeSubscriber(topic, conn)
    return true
  }

  /** Whether `conn` is subscribed to `topic`. */
  isSubscribed (conn: Conn, topic: string): boolean {
    return this.#topicsOf.get(conn)?.has(topic) ?? false
  }

  /** The topics `conn` is subscribed to. */
  topicsOf (conn: Conn): string[] {
    const topics = this.#topicsOf.get(conn)
    return topics === undefined ? [] : [...topics]
  }

  /** How many connections of this process are subscribed to `topic`. */
  subscriberCount (topic: string): number {
    return this.#topics.get(topic)?.subscribers.size ?? 0
  }

  /** The topics that have subscribers in this process. */
  get topics (): string[] {
    return [...this.#topics.keys()]
  }

  /**
   * Sends `data` to every subscriber of `topic`: framed once, compressed once per compression
   * setting, offered to each connection under its slow-consumer limit, and handed to the bus.
   * Resolves with what happened here once every subscriber was offered the message and the bus
   * took it; rejects with a PublishError (after local delivery) when the bus failed, and with a
   * UsageError for a bad topic or data. Never blocks on a subscriber; ignoring the promise is safe.
   */
  publish (topic: string, data: PublishData, options?: PublishOptions): Promise<PublishResult> {
    let message: PreparedMessage
    try {
      checkTopic(topic)
      message = toMessage(data)
    } catch (error) {
      return rejected(error)
    }
    const local = this.#deliver(topic, message, options?.except)
    const bus = this.#bus
    if (bus === undefined) return Promise.resolve(local)
    const sent = bus.publish(topic, { binary: message.type === BinaryMessage, data: message.data }).then(noop, (error: unknown) => ({ error }))
    const outcome = Promise.all([local, sent]).then(([result, failure]) => {
      if (failure !== undefined) throw new PublishError(topic, result, failure.error)
      return result
    })
    outcome.catch(noop)
    return outcome
  }

  /** Publishes `value` as one JSON text message, serialised once (by `serialize` when given). */
  publishJSON (topic: string, value: unknown, serialize: (value: unknown) => string = JSON.stringify): Promise<PublishResult> {
    let text: string
    try {
      text = serialize(value)
    } catch (error) {
      return rejected(error)
    }
    if (typeof text !== 'string') return rejected(new UsageError('publishJSON: the value does not serialise to JSON'))
    return this.publish(topic, text, undefined)
  }

  /** Closes the bus (when there is one); later publishes reach this process only. */
  async close (): Promise<void> {
    const bus = this.#bus
    this.#bus = undefined
    await bus?.close()
  }

  /** Delivers a message another process published; for the bus. */
  readonly deliverFromBus = (topic: string, message: BusMessage): void => {
    if (!message.binary && !isUtf8(message.data)) {
      // Our own processes only publish valid text; anything else came from elsewhere on the channel.
      this.#log.warn({ topic }, 'websocket: dropped a text message from the bus that is not valid UTF-8')
      return
    }
    if (!this.#topics.has(topic)) return
    this.#deliver(topic, new PreparedMessage(message.binary ? BinaryMessage : TextMessage, message.data), undefined)
  }

  /**
   * Offers `message` to the topic's subscribers: all at once when they are few and the topic has
   * nothing pending, otherwise FANOUT_SLICE of them per turn of the event loop. Returns what
   * happened, or a promise of it once every subscriber was offered the message.
   */
  #deliver (name: string, message: PreparedMessage, except: Conn | undefined): PublishResult | Promise<PublishResult> {
    const result: PublishResult = { delivered: 0, dropped: 0, closed: 0 }
    const topic = this.#topics.get(name)
    if (topic === undefined) return result
    const seq = this.#nextSeq++
    if (topic.pass === undefined && topic.subscribers.size <= this.#slice) {
      const spreading = this.#spreading.size > 0
      for (const conn of topic.subscribers.keys()) {
        // Whatever other topics still owe it goes first, so its messages keep their order.
        if (spreading) this.#catchUp(conn)
        if (conn !== except) count(result, offerPublished(conn, message))
      }
      return result
    }
    let settle!: (result: PublishResult) => void
    const settled = new Promise<PublishResult>((resolve) => { settle = resolve })
    const publish: PendingPublish = { seq, message, except, result, settle }
    topic.pending.push(publish)
    if (topic.pass === undefined) {
      topic.pass = topic.subscribers.keys()
      topic.passStart = this.#nextSeq
      this.#spreading.add(topic)
      this.#spread(topic, this.#slice)
    } else if (topic.pending.length >= MAX_PENDING_PUBLISHES) {
      // Publishes come faster than the topic's subscribers are served: finish now rather than hold more.
      this.#spread(topic, Infinity)
    }
    if (this.#spreading.size > 0) this.#scheduleTurn()
    return settled
  }

  /** Walks the topic's subscribers for at most `budget` of them, bringing each up to date. */
  #spread (topic: Topic, budget: number): void {
    for (let visited = 0; visited < budget; visited++) {
      const step = topic.pass!.next()
      if (step.done !== true) {
        this.#catchUp(step.value)
        continue
      }
      // Every subscriber was reached after the publishes older than this pass were made.
      topic.settleBefore(topic.passStart)
      if (topic.pending.length === 0) {
        topic.pass = undefined
        this.#spreading.delete(topic)
        return
      }
      // Newer publishes missed the subscribers passed before they came: another pass.
      topic.pass = topic.subscribers.keys()
      topic.passStart = this.#nextSeq
    }
  }

  #scheduleTurn (): void {
    if (this.#turnScheduled) return
    this.#turnScheduled = true
    setImmediate(this.#turn)
  }

  readonly #turn = (): void => {
    this.#turnScheduled = false
    for (const topic of this.#spreading) this.#spread(topic, this.#slice)
    if (this.#spreading.size > 0) this.#scheduleTurn()
  }

  /**
   * Offers `conn` every pending publish of every topic it is subscribed to, oldest first, each
   * counted in its publish's result.
   */
  #catchUp (conn: Conn): void {
    for (;;) {
      // Usually one topic owes it anything: then its publishes go in one run.
      let owing: Topic | undefined
      let index = -1
      let others = false
      for (const topic of this.#spreading) {
        const from = topic.subscribers.get(conn)
        if (from === undefined) continue
        const first = topic.firstPendingFrom(from)
        if (first < 0) continue
        if (owing === undefined || topic.pending[first]!.seq < owing.pending[index]!.seq) {
          others = owing !== undefined
          owing = topic
          index = first
        } else {
          others = true
        }
      }
      if (owing === undefined) return
      const pending = owing.pending
      const last = others ? index + 1 : pending.length
      // Moved on before offering: a subscriber closed for being slow must not be offered them again.
      owing.subscribers.set(conn, pending[last - 1]!.seq + 1)
      for (let i = index; i < last; i++) {
        const publish = pending[i]!
        if (conn !== publish.except) count(publish.result, offerPublished(conn, publish.message))
      }
      if (!others) return
    }
  }

  #leaveAll (conn: Conn): void {
    const topics = this.#topicsOf.get(conn)
    if (topics === undefined) return
    this.#topicsOf.delete(conn)
    for (const topic of topics) this.#removeSubscriber(topic, conn)
  }

  #removeSubscriber (name: string, conn: Conn): void {
    const topic = this.#topics.get(name)
    if (topic === undefined || !topic.subscribers.delete(conn) || topic.subscribers.size > 0) return
    this.#topics.delete(name)
    if (topic.pass !== undefined) {
      // Nobody is left to offer its pending publishes to.
      topic.settleBefore(Infinity)
      topic.pass = undefined
      this.#spreading.delete(topic)
    }
    this.#bus?.unsubscribe(name)
  }
}

function count (result: PublishResult, admission: Admission): void {
  if (admission === Admission.Accepted) result.delivered++
  else if (admission === Admission.Dropped) result.dropped++
  else if (admission === Admission.OverLimit) result.closed++
}

function checkTopic (topic: string): void {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new UsageError(`a topic must be a non-empty string of at most ${MAX_TOPIC_LENGTH} characters, got ${typeof topic === 'string' ? `${topic.length} characters` : typeof topic}`)
  }
}

function toMessage (data: PublishData): PreparedMessage {
  if (data instanceof PreparedMessage) {
    if (data.type !== TextMessage && data.type !== BinaryMessage) throw new UsageError('only text and binary messages can be published')
    return data
  }
  return new PreparedMessage(typeof data === 'string' ? TextMessage : BinaryMessage, data)
}
