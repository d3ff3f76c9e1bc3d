import { subscribe } from 'node:diagnostics_channel'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import { FST_WS_ROUTE_DECLARED_TOO_EARLY } from './errors.js'
import { injectWS, type InjectWSOptions } from './inject.js'
import { guardHandshakes } from '../handshake-guard.js'
import { Hub, type PublishData, type PublishOptions } from '../hub/hub.js'
import { DEFAULT_CLOSE_GRACE_PERIOD, validatePluginOptions, type PubSubOptions, type WsconnPluginOptions } from './options.js'
import type { BusDelivery, BusLogger, TopicBus } from '../pubsub/bus.js'
import { RedisBus } from '../pubsub/redis-bus.js'
import { ConnectionRegistry } from './registry.js'
import { createRouteHook, isKnownRoute, isMarkedWebsocketOnly, markWebsocketOnlyRoute } from './routes.js'
import { createUpgradeListener, getPendingUpgrade, isWebSocketRequest } from './upgrade-routing.js'
import { isCleartextHttp2, serveHttp2 } from './http2-routing.js'
import './types.js'

export type {
  InvalidMessagePolicy, OriginPolicy, PubSubOptions, RouteWebsocketOptions, WebsocketErrorHandler, WsconnPluginOptions
} from './options.js'
export { DEFAULT_CLOSE_GRACE_PERIOD, DEFAULT_PLUGIN_READ_LIMIT } from './options.js'
export { MessageValidationError } from './errors.js'
export type { InjectWSOptions } from './inject.js'
export type { TypedConn, WebsocketHandler, ResolveIncomingMessage, ResolveOutgoingMessage } from './types.js'

// Every Fastify instance created from now on marks its websocket-only routes from the first one,
// so one declared before this plugin was registered is still known as such (see the onRequest
// hook below). Fastify publishes this channel for tools that must see an instance from its start.
subscribe('fastify.initialization', function onFastifyCreated (message) {
  (message as { fastify: FastifyInstance }).fastify.addHook('onRoute', markWebsocketOnlyRoute)
})

async function wsconn (fastify: FastifyInstance, options: WsconnPluginOptions): Promise<void> {
  validatePluginOptions(options)
  const gracePeriod = options.closeGracePeriod ?? DEFAULT_CLOSE_GRACE_PERIOD
  const registry = new ConnectionRegistry()
  const bus = createBus(options.pubsub, (topic, message) => { hub.deliverFromBus(topic, message) }, fastify.log)
  const hub: Hub = new Hub({ bus, log: fastify.log })
  if (bus !== undefined) {
    try {
      await bus.ready()
    } catch (error) {
      await bus.close()
      throw error
    }
  }
  // Routes the onRoute hook never saw (declared before the plugin loaded) cannot be websocket
  // routes; an upgrade reaching one is refused loudly instead of being served as plain HTTP.
  // Warned once per route.
  const warned = new WeakSet<object>()

  fastify.decorate('websocketConnections', registry.connections)
  fastify.decorate('websocketHub', hub)
  fastify.decorate('websocketPublish', function (topic: string, data: PublishData, publishOptions?: PublishOptions) {
    return hub.publish(topic, data, publishOptions)
  })
  fastify.decorate('websocketPublishJSON', function (topic: string, value: unknown, serialize?: (value: unknown) => string) {
    return hub.publishJSON(topic, value, serialize)
  })
  fastify.decorate('websocketSubscriberCount', function (topic: string) {
    return hub.subscriberCount(topic)
  })
  fastify.decorate('injectWS', function (path?: string, injectOptions?: InjectWSOptions) {
    return injectWS(fastify, registry, path, injectOptions)
  })
  fastify.decorateRequest('ws', {
    getter (this: FastifyRequest): boolean {
      return isWebSocketRequest(this.raw)
    }
  })
  fastify.addHook('onRoute', createRouteHook(options, registry, hub))
  // A route the plugin's onRoute hook never saw refuses upgrades, and, when it was marked as
  // websocket-only (its handler expects a Conn), plain requests too.
  fastify.addHook('onRequest', function (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const config = request.routeOptions.config
    if (request.is404 || isKnownRoute(config) || (getPendingUpgrade(request.raw) === undefined && !isMarkedWebsocketOnly(config))) {
      done()
      return
    }
    const error = new FST_WS_ROUTE_DECLARED_TOO_EARLY(request.method, String(request.routeOptions.url))
    if (!warned.has(config)) {
      warned.add(config)
      request.log.warn(`websocket: ${error.message}`)
    }
    reply.send(error)
  })

  const onUpgrade = createUpgradeListener(fastify, registry)
  fastify.server.on('upgrade', onUpgrade)
  // Slowloris: nothing else bounds a connection that stalls before its upgrade request is complete
  // (a cleartext HTTP/2 server takes no HTTP/1.1 connection to guard).
  const stopGuard = isCleartextHttp2(fastify.server) ? noop : guardHandshakes(fastify.server, { headersTimeout: options.headersTimeout })
  const stopHttp2 = fastify.initialConfig.http2 === true ? serveHttp2(fastify, registry) : noop
  fastify.addHook('preClose', async function () {
    await registry.shutdown(gracePeriod)
  })
  fastify.addHook('onClose', async function () {
    fastify.server.off('upgrade', onUpgrade)
    stopGuard()
    stopHttp2()
    await hub.close()
  })
}

/** The bus of the `pubsub` option (checked already), undefined without one. */
function createBus (pubsub: PubSubOptions | undefined, deliver: BusDelivery, log: BusLogger): TopicBus | undefined {
  if (pubsub === undefined) return undefined
  return pubsub.bus !== undefined ? pubsub.bus(deliver, log) : new RedisBus(pubsub.redis, deliver, log)
}

function noop (): void {}

/**
 * The fastify-wsconn plugin: websocket routes (`websocket: true | {...}`, `wsHandler`) whose
 * upgrades go through Fastify's router and hooks, typed and validated JSON messages,
 * `app.injectWS`, `app.websocketConnections`, heartbeats and a graceful shutdown. Register it
 * (and await it, or declare routes in a plugin registered after it) before declaring routes.
 */
export const fastifyWsconn: FastifyPluginAsync<WsconnPluginOptions> = fp(wsconn, {
  name: 'fastify-wsconn',
  fastify: '5.x'
})

export default fastifyWsconn
