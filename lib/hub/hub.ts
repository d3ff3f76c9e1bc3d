import { isUtf8 } from 'node:buffer'
import { offerPublished, type Conn } from '../conn/conn.js'
import { Admission } from '../conn/write.js'
import { PreparedMessage } from '../prepared-message.js'
import { BinaryMessage, TextMessage } from '../protocol/constants.js'
import { PublishError, UsageError } from '../protocol/errors.js'
import type { Payload } from '../protocol/framing.js'
import type { BusLogger, BusMessage, TopicBus } from '../pubsub/bus.js'
import { noop, rejected } from '../settle.js'

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
}

/** Anything a publish accepts: a string is a text message, bytes a binary one. */
export type PublishData = Payload | PreparedMessage

/** The longest topic name, in UTF-16 code units. */
export const MAX_TOPIC_LENGTH = 1024

const NO_LOG: BusLogger = { info: noop, warn: noop, error: noop }

/**
 * Topics: connections subscribe to names, and a publish frames (and compresses) a message once
 * and offers it to every subscriber under its slow-consumer limit, so one slow subscriber never
 * blocks a publisher. With a bus, publishes also reach the subscribers of other processes, and
 * the topic is subscribed on the bus only while this process has subscribers to it.
 */
export class Hub {
  readonly #subscribers = new Map<string, Set<Conn>>()
  readonly #topicsOf = new Map<Conn, Set<string>>()
  #bus: TopicBus | undefined
  readonly #log: BusLogger
  readonly #forget = (conn: Conn): void => { this.#leaveAll(conn) }

  constructor (options: HubOptions = {}) {
    this.#bus = options.bus
    this.#log = options.log ?? NO_LOG
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
    let subscribers = this.#subscribers.get(topic)
    if (subscribers === undefined) {
      subscribers = new Set()
      this.#subscribers.set(topic, subscribers)
      this.#bus?.subscribe(topic)
    }
    subscribers.add(conn)
    return true
  }

  /** Removes `conn` from `topic`'s subscribers; false when it was not one. */
  unsubscribe (conn: Conn, topic: string): boolean {
    const topics = this.#topicsOf.get(conn)
    if (topics?.delete(topic) !== true) return false
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
    return this.#subscribers.get(topic)?.size ?? 0
  }

  /** The topics that have subscribers in this process. */
  get topics (): string[] {
    return [...this.#subscribers.keys()]
  }

  /**
   * Sends `data` to every subscriber of `topic`: framed once, compressed once per compression
   * setting, offered to each connection under its slow-consumer limit, then handed to the bus.
   * Resolves with what happened here once the bus took the message; rejects with a PublishError
   * (after local delivery) when the bus failed, and with a UsageError for a bad topic or data.
   * Never blocks on a subscriber; ignoring the promise is safe.
   */
  publish (topic: string, data: PublishData, options?: PublishOptions): Promise<PublishResult> {
    let message: PreparedMessage
    try {
      checkTopic(topic)
      message = toMessage(data)
    } catch (error) {
      return rejected(error)
    }
    const result = this.#deliver(topic, message, options?.except)
    const bus = this.#bus
    if (bus === undefined) return Promise.resolve(result)
    const sent = bus.publish(topic, { binary: message.type === BinaryMessage, data: message.data }).then(
      () => result,
      (error: unknown) => { throw new PublishError(topic, result, error) }
    )
    sent.catch(noop)
    return sent
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
    if (!this.#subscribers.has(topic)) return
    this.#deliver(topic, new PreparedMessage(message.binary ? BinaryMessage : TextMessage, message.data), undefined)
  }

  #deliver (topic: string, message: PreparedMessage, except: Conn | undefined): PublishResult {
    const result: PublishResult = { delivered: 0, dropped: 0, closed: 0 }
    const subscribers = this.#subscribers.get(topic)
    if (subscribers === undefined) return result
    for (const conn of subscribers) {
      if (conn === except) continue
      const admission = offerPublished(conn, message)
      if (admission === Admission.Accepted) result.delivered++
      else if (admission === Admission.Dropped) result.dropped++
      else if (admission === Admission.OverLimit) result.closed++
    }
    return result
  }

  #leaveAll (conn: Conn): void {
    const topics = this.#topicsOf.get(conn)
    if (topics === undefined) return
    this.#topicsOf.delete(conn)
    for (const topic of topics) this.#removeSubscriber(topic, conn)
  }

  #removeSubscriber (topic: string, conn: Conn): void {
    const subscribers = this.#subscribers.get(topic)
    if (subscribers === undefined || !subscribers.delete(conn) || subscribers.size > 0) return
    this.#subscribers.delete(topic)
    this.#bus?.unsubscribe(topic)
  }
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
