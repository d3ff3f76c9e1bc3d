import type { FastifyBaseLogger } from 'fastify'
import type { Conn } from '../conn/conn.js'
import { PingMessage } from '../protocol/constants.js'

/**
 * Pings the peer every `intervalMs`; when a ping is still unanswered at the next tick the peer is
 * taken for dead and the connection is destroyed (no closing handshake: nobody would answer it).
 * It learns of pongs as the Conn's pong observer, given when the Conn is made, which sees every
 * pong before the application's pong handler: `conn.setPongHandler` stays the application's.
 * The timer stops when the connection closes and never keeps the process alive.
 */
export class Heartbeat {
  readonly #intervalMs: number
  #awaitingPong = false

  constructor (intervalMs: number) {
    this.#intervalMs = intervalMs
  }

  /** The Conn's pong observer: any pong answers the ping in flight. */
  readonly observePong = (): void => {
    this.#awaitingPong = false
  }

  /** Starts pinging `conn`, whose pong observer is `observePong`. */
  start (conn: Conn, log: FastifyBaseLogger): void {
    const timer = setInterval(() => {
      if (this.#awaitingPong) {
        clearInterval(timer)
        log.debug('websocket: the peer did not answer a ping in time; connection destroyed')
        conn.terminate()
        return
      }
      this.#awaitingPong = true
      conn.writeControl(PingMessage).catch(() => {
        // The connection is closing or gone; its closed promise stops the timer.
      })
    }, this.#intervalMs)
    timer.unref()
    conn.closed.then(() => { clearInterval(timer) })
  }
}
