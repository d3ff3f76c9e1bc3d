import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Conn, ConnHooks } from '../conn/conn.js'
import { CloseGoingAway, CloseInternalServerErr } from '../protocol/constants.js'
import { CloseError, CloseSentError, HandshakeError, ProtocolError, WriteClosedError } from '../protocol/errors.js'
import { Heartbeat } from './heartbeat.js'
import { MessageValidationError } from './errors.js'
import { compileCodec, isThenable, type MessageSchemas } from './messages.js'
import type { RouteSettings } from './options.js'
import { SHUTDOWN_REASON, type ConnectionRegistry } from './registry.js'
import { settlePendingUpgrade, type PendingUpgrade } from './upgrade-routing.js'

/** A websocket handler as the plugin calls it: `this` is the route's Fastify instance. */
export type AnyWebsocketHandler = (this: FastifyInstance, conn: Conn, request: FastifyRequest) => unknown

/** What the plugin knows about one websocket route. */
export interface WebsocketRoute {
  settings: RouteSettings
  handler: AnyWebsocketHandler
  schemas: MessageSchemas | undefined
  /**
   * What every connection of the route is made with, one object for them all: the route's JSON
   * codec, compiled at the route's first upgrade, and the registry's close observer.
   */
  hooks?: ConnHooks
  /** The route's heartbeat, made with its hooks when it has a `pingInterval`. */
  heartbeat?: Heartbeat
}

/**
 * Takes over an upgrade request whose hooks have all passed: compiles the message schemas (a
 * failure here is still answered by Fastify with a 500), hijacks the reply, runs the handshake
 * and then the handler. Never throws after the hijack; every later failure is logged.
 */
export function acceptUpgrade (
  instance: FastifyInstance, request: FastifyRequest, reply: FastifyReply,
  upgrade: PendingUpgrade, route: WebsocketRoute, registry: ConnectionRegistry
): void {
  route.hooks ??= routeHooks(request, reply, route, registry)
  reply.hijack()
  upgrade.claim()
  if (registry.shuttingDown) {
    upgrade.refuseUnavailable()
    return
  }
  runSession(instance, request, upgrade, route, registry, route.hooks)
}

/**
 * The hooks every connection of `route` is made with, built at its first upgrade: the JSON codec
 * (Fastify caches what its compilers make by route, so a route compiles once whichever way;
 * keeping the codec with the route spares a codec object per connection), and the observers of
 * the registry and of the route's heartbeat, made here too when the route has one.
 */
function routeHooks (request: FastifyRequest, reply: FastifyReply, route: WebsocketRoute, registry: ConnectionRegistry): ConnHooks {
  const json = compileCodec(request, reply, route.schemas, route.settings.onInvalidMessage)
  const pingInterval = route.settings.pingInterval
  if (pingInterval === 0) return { json, closeObserver: registry.observeClose }
  const heartbeat = new Heartbeat(pingInterval)
  route.heartbeat = heartbeat
  return {
    json,
    pongObserver: heartbeat.observePong,
    closeObserver: (conn) => {
      registry.observeClose(conn)
      heartbeat.forget(conn)
    }
  }
}

/** Runs the handshake, then starts the handler; every failure is handled here, so it never rejects. */
async function runSession (
  instance: FastifyInstance, request: FastifyRequest, upgrade: PendingUpgrade,
  route: WebsocketRoute, registry: ConnectionRegistry, hooks: ConnHooks
): Promise<void> {
  let conn: Conn
  try {
    conn = await upgrade.handshake(route.settings.upgrader, hooks)
  } catch (err) {
    logRefusal(request, err as HandshakeError)
    return
  } finally {
    // What routing the upgrade needed (the stand-in response, the socket's listeners) goes now,
    // even while the handler keeps `request` (and so its raw request) for the connection's life.
    settlePendingUpgrade(request.raw)
  }
  if (registry.shuttingDown) {
    conn.close(CloseGoingAway, SHUTDOWN_REASON)
    return
  }
  registry.add(conn)
  route.heartbeat?.add(conn, request.log)
  startHandler(instance, request, conn, route)
}

/**
 * Calls the handler and returns at once: nothing here waits for it, so a handler that runs for
 * the connection's life keeps alive only what it references itself, plus what a failure needs
 * (the request's logger, and the request when the route has an errorHandler to give it to).
 */
function startHandler (instance: FastifyInstance, request: FastifyRequest, conn: Conn, route: WebsocketRoute): void {
  const settings = route.settings
  let running: unknown
  try {
    running = route.handler.call(instance, conn, request)
  } catch (err) {
    // Never rejects: every failure is logged.
    handleFailure(instance, toError(err), conn, request.log, request, settings)
    return
  }
  if (!isThenable(running)) return
  const log = request.log
  const failedRequest = settings.errorHandler === undefined ? undefined : request
  Promise.resolve(running).then(undefined, async (err: unknown) => {
    await handleFailure(instance, toError(err), conn, log, failedRequest, settings)
  })
}

/** The handshake's own refusals were already answered with their status; only the log level differs. */
function logRefusal (request: FastifyRequest, err: HandshakeError): void {
  if (err.status >= 500) request.log.error({ err }, 'websocket: handshake failed')
  else if (err.status === 0) request.log.debug({ err }, 'websocket: connection lost during the handshake')
  else request.log.info({ err }, `websocket: handshake refused with ${err.status}`)
}

/**
 * A handler threw or rejected. Errors that only report the end of the connection (the peer
 * closed or vanished, it broke the protocol, or sent an invalid message) are logged below error
 * level; anything else is a server error: it goes to `request.log.error` (`log`) and the errorHandler,
 * and the connection closes with 1011.
 */
async function handleFailure (
  instance: FastifyInstance, error: Error, conn: Conn, log: FastifyBaseLogger, request: FastifyRequest | undefined, settings: RouteSettings
): Promise<void> {
  if (error instanceof MessageValidationError) {
    log.info({ err: error }, 'websocket: invalid message from the client')
    conn.close(error.closeCode, error.reason)
    return
  }
  if (error instanceof ProtocolError) {
    log.info({ err: error }, 'websocket: the client broke the protocol')
    return
  }
  if (error instanceof CloseError || error instanceof WriteClosedError || error instanceof CloseSentError) {
    log.debug({ err: error }, 'websocket: connection ended')
    return
  }
  log.error({ err: error }, 'websocket: handler failed')
  if (settings.errorHandler !== undefined) {
    try {
      // startHandler keeps the request whenever the route has an errorHandler.
      await settings.errorHandler.call(instance, error, conn, request!)
    } catch (err) {
      log.error({ err }, 'websocket: errorHandler failed')
    }
  }
  conn.close(CloseInternalServerErr, 'internal error')
}

function toError (value: unknown): Error {
  return value instanceof Error ? value : new Error(`non-error thrown: ${String(value)}`)
}
