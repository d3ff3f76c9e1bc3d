import type { Conn } from '../conn/conn.js'
import type { PreparedMessage } from '../prepared-message.js'
import type { PublishResult } from './hub.js'

/** A publish that has not yet been offered to every subscriber of its topic. */
export interface PendingPublish {
  /** Its place in the hub's order of publishes. */
  readonly seq: number
  readonly message: PreparedMessage
  readonly except: Conn | undefined
  readonly result: PublishResult
  /** Resolves the publish's promise (nobody waits on it for a message that came from the bus). */
  readonly settle: (result: PublishResult) => void
}

/**
 * One topic: its subscribers, each mapped to the sequence number from which it has not been
 * offered this topic's pending publishes, and, while a large fan-out is spread over several turns
 * of the event loop, those pending publishes and the pass that walks the subscribers.
 */
export class Topic {
  readonly subscribers = new Map<Conn, number>()
  /** Publishes not yet offered to every subscriber, oldest first. */
  readonly pending: PendingPublish[] = []
  /** The pass over the subscribers under way, while the topic has pending publishes. */
  pass: Iterator<Conn> | undefined = undefined
  /** The hub's next sequence number when the pass under way began. */
  passStart = 0

  /** The index of the first pending publish numbered `from` or later, or -1. */
  firstPendingFrom (from: number): number {
    const pending = this.pending
    let low = 0
    let high = pending.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (pending[middle]!.seq < from) low = middle + 1
      else high = middle
    }
    return low === pending.length ? -1 : low
  }

  /** Settles and forgets the pending publishes numbered below `seq`: every subscriber has had them. */
  settleBefore (seq: number): void {
    const pending = this.pending
    let count = 0
    while (count < pending.length && pending[count]!.seq < seq) {
      const publish = pending[count++]!
      publish.settle(publish.result)
    }
    pending.splice(0, count)
  }
}
