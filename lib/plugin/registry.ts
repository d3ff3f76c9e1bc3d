import type { Duplex } from 'node:stream'
import type { Conn } from '../conn/conn.js'
import { CloseGoingAway } from '../protocol/constants.js'

/** The close reason sent to every connection when the server shuts down. */
export const SHUTDOWN_REASON = 'server shutting down'

/**
 * The live connections of one plugin instance, and its shutdown: a connection is listed from its
 * 101 until its socket has closed.
 */
export class ConnectionRegistry {
  /** The live connections; read-only to users, who get it as `app.websocketConnections`. */
  readonly connections = new Set<Conn>()
  #shuttingDown = false
  /** What `settled` waits for, by socket: called when a connection on it is listed. */
  readonly #waiting = new WeakMap<Duplex, () => void>()

  /** True once `shutdown` has begun: no connection may start any more. */
  get shuttingDown (): boolean {
    return this.#shuttingDown
  }

  /**
   * Lists `conn` until its socket closes, which `observeClose` (its close observer, given when
   * it was made) reports. A socket destroyed already is not listed: its close may have been
   * reported before this call.
   */
  add (conn: Conn): void {
    const socket = conn.socket
    if (!socket.destroyed) this.connections.add(conn)
    this.#waiting.get(socket)?.()
  }

  /** The close observer of every connection `add` lists: one function for them all. */
  readonly observeClose = (conn: Conn): void => {
    this.connections.delete(conn)
  }

  /** Resolves once a connection on `socket` is listed, or once `socket` has closed without one. */
  settled (socket: Duplex): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#waiting.delete(socket)
        socket.off('close', done)
        resolve()
      }
      this.#waiting.set(socket, done)
      socket.once('close', done)
    })
  }

  /**
   * Sends 1001 to every live connection, waits for their closing handshakes for at most
   * `gracePeriodMs`, then destroys the ones left and resolves once every socket has closed.
   */
  async shutdown (gracePeriodMs: number): Promise<void> {
    this.#shuttingDown = true
    const open = [...this.connections]
    if (open.length === 0) return
    for (const conn of open) conn.close(CloseGoingAway, SHUTDOWN_REASON)
    const allClosed = Promise.all(open.map(async (conn) => await conn.closed))
    let timer: NodeJS.Timeout | undefined
    const graceOver = new Promise<void>((resolve) => { timer = setTimeout(resolve, gracePeriodMs) })
    await Promise.race([allClosed, graceOver])
    clearTimeout(timer)
    for (const conn of open) conn.terminate()
    await allClosed
  }
}
