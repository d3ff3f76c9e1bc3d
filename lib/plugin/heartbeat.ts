import type { FastifyBaseLogger } from 'fastify'
import type { Conn, ControlHandler } from '../conn/conn.js'
import { PingMessage } from '../protocol/constants.js'

/**
 * Pings the peer every `intervalMs`; when a ping is still unanswered at the next tick the peer is
 * taken for dead and the connection is destroyed (no closing handshake: nobody would answer it).
 * The pong handler stays the application's to set: `conn.setPongHandler` keeps working, and the
 * heartbeat sees every pong first. The timer stops when the connection closes and never keeps
 * the process alive.
 */
export function startHeartbeat (conn: Conn, intervalMs: number, log: FastifyBaseLogger): void {
  let awaitingPong = false
  let applicationHandler: ControlHandler | undefined
  const setPongHandler = conn.setPongHandler.bind(conn)
  setPongHandler((data) => {
    awaitingPong = false
    return applicationHandler?.(data)
  })
  conn.setPongHandler = (handler: ControlHandler | null): void => {
    applicationHandler = handler ?? undefined
  }

  const timer = setInterval(() => {
    if (awaitingPong) {
      clearInterval(timer)
      log.debug('websocket: the peer did not answer a ping in time; connection destroyed')
      conn.terminate()
      return
    }
    awaitingPong = true
    conn.writeControl(PingMessage).catch(() => {
      // The connection is closing or gone; its closed promise stops the timer.
    })
  }, intervalMs)
  timer.unref()
  conn.closed.then(() => { clearInterval(timer) })
}
