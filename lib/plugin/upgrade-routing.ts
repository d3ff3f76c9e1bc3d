import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { isGuardListener } from '../handshake-guard.js'
import { endSocketSoon, isWebSocketUpgrade, writeHttpResponse } from '../handshake.js'

/** A WebSocket upgrade request on its way through Fastify's router, before the handshake. */
export interface PendingUpgrade {
  socket: Duplex
  head: Buffer
  /**
   * Takes the socket away from the stand-in response Fastify writes HTTP answers to, so the
   * handshake can write on it. Call it only after `reply.hijack()`.
   */
  claim: () => void
}

const kPendingUpgrade = Symbol('fastify-wsconn.pendingUpgrade')

type UpgradeCarrier = IncomingMessage & { [kPendingUpgrade]?: PendingUpgrade }

/** The pending upgrade carried by a raw request, or undefined for an ordinary HTTP request. */
export function getPendingUpgrade (raw: IncomingMessage): PendingUpgrade | undefined {
  return (raw as UpgradeCarrier)[kPendingUpgrade]
}

/** Body Fastify itself sends with a 503 while closing, reused so both paths answer alike. */
const SERVICE_UNAVAILABLE_BODY = '{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}'

/** Answers an upgrade with 503 on its raw socket and closes it. */
export function refuseUnavailable (socket: Duplex): void {
  writeHttpResponse(socket, 503, { 'Content-Type': 'application/json; charset=utf-8' }, SERVICE_UNAVAILABLE_BODY)
}

/** Whether a listener other than `own` (and other than a handshake guard's) may take upgrades. */
function hasOtherUpgradeListener (server: FastifyInstance['server'], own: unknown): boolean {
  return server.listeners('upgrade').some((listener) => listener !== own && !isGuardListener(listener))
}

/** What the upgrade listener needs to know about the plugin's state. */
export interface UpgradeRoutingState {
  /** True once `app.close()` has begun: new upgrades get 503. */
  readonly shuttingDown: boolean
}

/**
 * Builds the server 'upgrade' listener: each WebSocket upgrade request goes through
 * `fastify.routing` with a stand-in ServerResponse on the raw socket, so the route's hooks and
 * schemas run before any 101, and whatever Fastify answers over HTTP (404, a hook's 401, a 503
 * while closing) reaches the client as a real response, after which the socket is closed.
 */
export function createUpgradeListener (fastify: FastifyInstance, state: UpgradeRoutingState): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const log = fastify.log
  return function onUpgrade (req, socket, head) {
    const websocket = isWebSocketUpgrade(req)
    // Another protocol (curl's `Upgrade: h2c`, say) is left to another listener when there is
    // one; otherwise it is answered as plain HTTP, ignoring the Upgrade header as RFC 9110 allows.
    if (!websocket && hasOtherUpgradeListener(fastify.server, onUpgrade)) return
    // Node removed its own 'error' listener before emitting 'upgrade'; an error now (the client
    // went away while hooks run) is logged below error level and must never crash the process.
    const onSocketError = (err: Error): void => {
      log.debug({ err }, 'websocket: socket error before the handshake')
      socket.destroy()
    }
    socket.on('error', onSocketError)
    if (websocket && state.shuttingDown) {
      refuseUnavailable(socket)
      return
    }
    const response = new ServerResponse(req)
    // The socket is closed after the answer, so the response must say so.
    response.shouldKeepAlive = false
    const onFinish = (): void => { endSocketSoon(socket) }
    response.once('finish', onFinish)
    if (websocket) {
      // A FIN while the hooks run means the client can never complete a WebSocket: free the
      // socket now rather than when the hooks end (the handshake then refuses it).
      const onSocketEnd = (): void => {
        log.debug('websocket: the client closed the connection before the handshake')
        socket.destroy()
      }
      socket.on('end', onSocketEnd)
      ;(req as UpgradeCarrier)[kPendingUpgrade] = {
        socket,
        head,
        claim () {
          socket.off('error', onSocketError)
          socket.off('end', onSocketEnd)
          response.off('finish', onFinish)
          response.detachSocket(socket as Socket)
        }
      }
    }
    try {
      response.assignSocket(socket as Socket)
      fastify.routing(req, response)
    } catch (err) {
      log.warn({ err }, 'websocket: routing an upgrade request failed')
      socket.destroy()
    }
  }
}
