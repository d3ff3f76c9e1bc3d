import type { Conn } from '../conn/conn.js'
import type { Hub } from './hub.js'

let deliverPending: (hub: Hub, conn: Conn) => void

/** Installs the Hub's way of bringing a connection up to date; called once, by the Hub class. */
export function setCatchUp (deliver: (hub: Hub, conn: Conn) => void): void {
  deliverPending = deliver
}

/**
 * Offers `conn` every publish its hub has not yet brought to it, so that a write or a close that
 * follows a publish reaches the peer after it; the Conn calls it before its own writes.
 */
export function catchUpWithHub (hub: Hub, conn: Conn): void {
  deliverPending(hub, conn)
}
