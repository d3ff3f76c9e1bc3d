import type { FastifyBaseLogger } from 'fastify'
import type { Conn } from '../conn/conn.js'
import { PingMessage } from '../protocol/constants.js'

/**
 * The heartbeat of one route: one timer pings every open connection of the route each
 * `intervalMs`, and a connection whose previous ping is still unanswered at the next tick is
 * taken for dead and destroyed (no closing handshake: nobody would answer it). One timer for all
 * rather than one per connection: an idle connection costs two set entries, not a timer and its
 * closures. A connection's first ping goes out at the first tick after it opened.
 * It learns of pongs as the connections' pong observer, which sees every pong before the
 * application's pong handler (`conn.setPongHandler` stays the application's), and of closes as
 * part of their close observer. The timer runs only while there are connections, and never keeps
 * the process alive.
 */
export class Heartbeat {
  readonly #intervalMs: number
  /** The connections pinged, each with the logger of the request that opened it. */
  readonly #members = new Map<Conn, FastifyBaseLogger>()
  /** The connections pinged at the last tick that have not answered since. */
  readonly #awaitingPong = new Set<Conn>()
  #timer: NodeJS.Timeout | undefined

  constructor (intervalMs: number) {
    this.#intervalMs = intervalMs
  }

  /** Starts pinging `conn`, whose pong observer is `observePong` and whose close `forget` is told of. */
  add (conn: Conn, log: FastifyBaseLogger): void {
    this.#members.set(conn, log)
    if (this.#timer === undefined) {
      this.#timer = setInterval(this.#tick, this.#intervalMs)
      this.#timer.unref()
    }
  }

  /** The pong observer of the route's connections: any pong answers the ping in flight. */
  readonly observePong = (conn: Conn): void => {
    this.#awaitingPong.delete(conn)
  }

  /** Stops pinging `conn` (its socket closed). */
  forget (conn: Conn): void {
    this.#awaitingPong.delete(conn)
    if (this.#members.delete(conn) && this.#members.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  readonly #tick = (): void => {
    for (const [conn, log] of this.#members) {
      if (this.#awaitingPong.has(conn)) {
        this.forget(conn)
        log.debug('websocket: the peer did not answer a ping in time; connection destroyed')
        conn.terminate()
        continue
      }
      this.#awaitingPong.add(conn)
      conn.writeControl(PingMessage).catch(ignore)
    }
  }
}

/** A ping that cannot be written: the connection is closing or gone, and its close ends its membership. */
function ignore (): void {}
