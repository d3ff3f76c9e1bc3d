import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Conn, ConnHooks } from '../conn/conn.js'
import { isGuardListener } from '../handshake-guard.js'
import { endSocketSoon, isWebSocketUpgrade, writeHttpResponse } from '../handshake.js'
import type { Upgrader } from '../upgrader.js'

/**
 * A WebSocket request on its way through Fastify's router, before the handshake: an HTTP/1.1
 * upgrade, or an HTTP/2 extended CONNECT (lib/plugin/http2-routing.ts).
 */
export interface PendingUpgrade {
  /**
   * Takes the socket or stream away from the response Fastify writes HTTP answers to, so the
   * handshake can answer on it. Call it only after `reply.hijack()`.
   */
  claim: () => void
  /** Runs the opening handshake with the route's Upgrader; rejects as `Upgrader.upgrade` does. */
  handshake: (upgrader: Upgrader, hooks: ConnHooks) => Promise<Conn>
  /** Answers 503 (the server is closing) and closes the socket or stream. */
  refuseUnavailable: () => void
}

const kPendingUpgrade = Symbol('fastify-wsconn.pendingUpgrade')

type UpgradeCarrier = IncomingMessage & { [kPendingUpgrade]?: PendingUpgrade }

/** The pending upgrade carried by a raw request, or undefined for an ordinary HTTP request or a settled upgrade. */
export function getPendingUpgrade (raw: object): PendingUpgrade | undefined {
  return (raw as UpgradeCarrier)[kPendingUpgrade]
}

/** Whether a raw request came as a WebSocket request, pending or settled (`request.ws`). */
export function isWebSocketRequest (raw: object): boolean {
  return kPendingUpgrade in raw
}

/**
 * Drops a raw request's pending upgrade once its handshake has settled, so that a request the
 * handler keeps no longer keeps the upgrade's socket listeners and stand-in response; the request
 * is still known as a WebSocket request.
 */
export function settlePendingUpgrade (raw: object): void {
  (raw as UpgradeCarrier)[kPendingUpgrade] = undefined
}

/** Marks a raw request as a WebSocket request for the route handler and `request.ws`. */
export function setPendingUpgrade (raw: object, upgrade: PendingUpgrade): void {
  (raw as UpgradeCarrier)[kPendingUpgrade] = upgrade
}

/** Body Fastify itself sends with a 503 while closing, reused so every path answers alike. */
export const SERVICE_UNAVAILABLE_BODY = '{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}'

/** Answers an upgrade with 503 on its raw socket and closes it. */
function refuseUnavailable (socket: Duplex): void {
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
      setPendingUpgrade(req, {
        claim () {
          socket.off('error', onSocketError)
          socket.off('end', onSocketEnd)
          response.off('finish', onFinish)
          response.detachSocket(socket as Socket)
        },
        handshake: async (upgrader, hooks) => await upgrader.upgrade(req, socket, head, undefined, hooks),
        refuseUnavailable () { refuseUnavailable(socket) }
      })
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
