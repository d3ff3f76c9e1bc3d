// The seam between the in-process Hub and whatever carries publishes to other processes: the Hub
// delivers to its own subscribers itself and hands every publish to a bus, which delivers what
// other processes published back through a BusDelivery.

/** One published message as it travels between processes: text stays text, every byte value survives. */
export interface BusMessage { readonly binary: boolean, readonly data: Buffer }

/** Called by a bus for every message another process published on a topic this process subscribed to. */
export type BusDelivery = (topic: string, message: BusMessage) => void

/** The pino-like logger a bus reports to (Fastify's app.log fits). */
export interface BusLogger { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void }

/** Carries publishes between processes. */
export interface TopicBus {
  /** Waits until the bus can publish and receive; rejects with a clear error when it cannot (at startup). */
  ready(): Promise<void>
  /** Starts receiving the topic from other processes; the Hub calls it when the topic gets its first local subscriber. */
  subscribe(topic: string): void
  /** Stops receiving the topic; called when its last local subscriber leaves. */
  unsubscribe(topic: string): void
  /**
   * Sends one message to every other process; settles fast and rejects (never hangs, never buffers
   * without bound) when the bus is unavailable. A process never receives its own publishes back.
   */
  publish(topic: string, message: BusMessage): Promise<void>
  /** Unsubscribes everything, closes the bus's connections and leaves no timer or handle behind. */
  close(): Promise<void>
}
