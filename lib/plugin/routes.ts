import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { Hub } from '../hub/hub.js'
import { FST_WS_NOT_WEBSOCKET_ROUTE, FST_WS_UPGRADE_REQUIRED } from './errors.js'
import { resolveRouteSettings, type RouteWebsocketOptions } from './options.js'
import type { ConnectionRegistry } from './registry.js'
import { acceptUpgrade, type AnyWebsocketHandler, type WebsocketRoute } from './session.js'
import { getPendingUpgrade } from './upgrade-routing.js'

/** Marks, in a route's config, that the plugin saw the route; the value is its websocket setup or null. */
const kWebsocketRoute = Symbol('fastify-wsconn.route')

type HttpHandler = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) => unknown

/** The route options the plugin reads, beside Fastify's own. */
interface WebsocketRouteOptions {
  websocket?: boolean | RouteWebsocketOptions
  wsHandler?: unknown
  schema?: RouteOptions['schema'] & { incoming?: unknown, outgoing?: unknown, hide?: boolean }
  config?: Record<string | symbol, unknown>
}

/** Marks, in a route's config, a websocket-only route (`websocket` without `wsHandler`), whoever saw it. */
const kWebsocketOnly = Symbol('fastify-wsconn.websocketOnly')

/** Reports whether the plugin's onRoute hook saw the route a request matched. */
export function isKnownRoute (config: object | undefined): boolean {
  return config !== undefined && kWebsocketRoute in config
}

/**
 * An onRoute hook that only marks websocket-only routes, so that one declared before the plugin
 * loaded (which the plugin's own hook never saw, and whose handler is a websocket handler) is
 * recognised when a plain request reaches it.
 */
export function markWebsocketOnlyRoute (routeOptions: RouteOptions): void {
  const options = routeOptions as RouteOptions & WebsocketRouteOptions
  if (options.wsHandler === undefined && options.websocket !== undefined && options.websocket !== false) {
    options.config = { ...options.config, [kWebsocketOnly]: true }
  }
}

/** Reports whether `markWebsocketOnlyRoute` marked the route a request matched. */
export function isMarkedWebsocketOnly (config: object | undefined): boolean {
  return config !== undefined && kWebsocketOnly in config
}

/** An HTTP error with the status and headers Fastify's error handling uses. */
/**
 * The HTTP handler of a websocket-only route: a plain request gets 426, with `Upgrade: websocket`
 * over HTTP/1.1 (HTTP/2 forbids connection-specific headers, RFC 9113 §8.2.2; its clients ask
 * with an extended CONNECT instead).
 */
function upgradeRequired (request: FastifyRequest, reply: FastifyReply): void {
  const headers = request.raw.httpVersionMajor === 2 ? {} : { upgrade: 'websocket', connection: 'Upgrade' }
  reply.send(Object.assign(new FST_WS_UPGRADE_REQUIRED(), { headers }))
}

/**
 * Builds the onRoute hook that wraps every route declared after the plugin loaded. A websocket
 * route (`websocket: true | {...}` or `wsHandler`) must be GET (HEAD is answered like a plain
 * GET); its settings are resolved and checked right away, so a bad option fails at declaration.
 * Every wrapped handler sends upgrade requests to the handshake (websocket routes) or refuses
 * them with 400 (other routes), and ordinary requests to the route's HTTP handler.
 */
export function createRouteHook (defaults: RouteWebsocketOptions, registry: ConnectionRegistry, hub: Hub): (routeOptions: RouteOptions) => void {
  return function onRoute (routeOptions) {
    const options = routeOptions as RouteOptions & WebsocketRouteOptions
    let httpHandler = options.handler as HttpHandler
    let route: WebsocketRoute | null = null
    if (options.wsHandler !== undefined || (options.websocket !== undefined && options.websocket !== false)) {
      const where = `${String(options.method)} ${String(options.url)}`
      const methods = Array.isArray(options.method) ? options.method : [options.method]
      if (methods.some((method) => method !== 'GET' && method !== 'HEAD')) {
        throw new Error(`websocket: route ${where}: a websocket route must use the GET method`)
      }
      if (options.websocket === false) {
        throw new TypeError(`websocket: route ${where}: wsHandler is given but websocket is false`)
      }
      let wsHandler: unknown = options.wsHandler
      if (wsHandler === undefined) {
        // A websocket-only route: its handler serves upgrades, and OpenAPI generators skip it.
        wsHandler = options.handler
        httpHandler = upgradeRequired
        options.schema = { ...options.schema, hide: true }
      }
      if (typeof wsHandler !== 'function') throw new TypeError(`websocket: route ${where}: wsHandler must be a function`)
      const schemas = options.schema
      for (const part of ['incoming', 'outgoing'] as const) {
        const schema = schemas?.[part]
        if (schema !== undefined && (typeof schema !== 'object' || schema === null)) {
          throw new TypeError(`websocket: route ${where}: schema.${part} must be a JSON schema object`)
        }
      }
      route = {
        settings: resolveRouteSettings(defaults, options.websocket as true | RouteWebsocketOptions | undefined, hub),
        handler: wsHandler as AnyWebsocketHandler,
        schemas
      }
    }
    const websocketRoute = route
    options.config = { ...options.config, [kWebsocketRoute]: websocketRoute }
    options.handler = function handler (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const upgrade = getPendingUpgrade(request.raw)
      if (upgrade === undefined) return httpHandler.call(this, request, reply)
      if (websocketRoute === null) {
        // 400 rather than 426: the client did ask for a WebSocket, and no upgrade exists that this
        // URL would accept (426 would have to name a protocol to switch to).
        reply.send(new FST_WS_NOT_WEBSOCKET_ROUTE())
        return
      }
      acceptUpgrade(this, request, reply, upgrade, websocketRoute, registry)
    }
  }
}
