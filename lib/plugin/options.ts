import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Conn } from '../conn/conn.js'
import { checkSameOrigin } from '../handshake.js'
import { checkMilliseconds } from '../option-checks.js'
import { CONN_OPTION_NAMES, pickConnOptions, type ConnOptions } from '../options.js'
import type { Hub } from '../hub/hub.js'
import type { BusDelivery, BusLogger, TopicBus } from '../pubsub/bus.js'
import type { RedisBusOptions } from '../pubsub/redis-bus.js'
import { Upgrader, type UpgraderOptions } from '../upgrader.js'
import { resolveCompression, type CompressionOptions } from '../deflate/compression.js'

/**
 * Which browser origins may open a connection: `true` (same origin as the Host header, or no
 * Origin header at all), `false` (any origin), a list of origins allowed besides the same origin
 * (e.g. `['https://app.example.com']`), or a function deciding for each request.
 */
export type OriginPolicy = boolean | readonly string[] | ((req: IncomingMessage) => boolean | Promise<boolean>)

/**
 * What `conn.readJSON()` does with a message that is not JSON or fails `schema.incoming`:
 * `'close'` closes the connection with 1007 and a short reason, then rejects; `'reject'` only
 * rejects with a MessageValidationError, so the handler can answer and keep the connection.
 */
export type InvalidMessagePolicy = 'close' | 'reject'

/**
 * Called when a websocket handler throws or rejects, after the error was logged with
 * `request.log.error`; the connection is closed with 1011 once it returns, unless it closed it itself.
 */
export type WebsocketErrorHandler = (this: FastifyInstance, error: Error, conn: Conn, request: FastifyRequest) => void | Promise<void>

/** Settings a route may give in `websocket: { ... }`; each one overrides the plugin's for that route only. */
export interface RouteWebsocketOptions extends ConnOptions {
  /** Origin check of the handshake, refused with 403. Default `true` (same origin). */
  checkOrigin?: OriginPolicy
  /** Subprotocols the route speaks; the client's first offered match is chosen. Default none. */
  subprotocols?: string[]
  /** Chooses the subprotocol from the client's offer; takes precedence over `subprotocols`. */
  selectSubprotocol?: UpgraderOptions['selectSubprotocol']
  /** Milliseconds allowed for the handshake checks and the 101 (after the Fastify hooks). Default 10000. */
  handshakeTimeout?: number
  /** Extra headers for the 101 response. */
  headers?: Record<string, string | string[]>
  /**
   * permessage-deflate (RFC 7692): `true` for the defaults, or an object (context takeover and
   * window bits to agree to, `level`, `memLevel`, `threshold`, `idleTimeout`, `syncLimit`). Default false.
   */
  compression?: boolean | CompressionOptions
  /**
   * Milliseconds between pings sent to the peer; a peer that has not answered a ping by the next
   * one is disconnected. 0 turns the heartbeat off. Default 0.
   */
  pingInterval?: number
  /** What `readJSON()` does with invalid messages. Default `'close'`. */
  onInvalidMessage?: InvalidMessagePolicy
  /** Called with errors the handler throws; see WebsocketErrorHandler. Default none (the error is only logged). */
  errorHandler?: WebsocketErrorHandler
}

/** Options of the plugin: defaults for every websocket route, plus server-wide settings. */
export interface WsconnPluginOptions extends RouteWebsocketOptions {
  /**
   * Milliseconds `app.close()` waits for the closing handshakes of open connections (each sent
   * 1001) before it destroys the ones left. Default 5000.
   */
  closeGracePeriod?: number
  /**
   * Milliseconds every new connection to the server has to deliver the complete headers of its
   * first request, upgrade or not (on HTTPS: its TLS handshake, then the headers, each within it);
   * one that stalls is destroyed. The server's `headersTimeout` is lowered to it when larger. 0
   * turns the guard off. Default 10000. See `guardHandshakes`.
   */
  headersTimeout?: number
  /**
   * Fan-out across processes: `{ redis: { url } }` (or `{ redis: { client } }`, see RedisBusOptions)
   * makes every publish reach the subscribers of every process on that Redis; `{ bus: (deliver, log) => TopicBus }`
   * uses any other transport (the plugin gives it the function that delivers its messages here). Registration waits until the bus is ready and fails when it cannot be. Default
   * none: topics stay in this process.
   */
  pubsub?: PubSubOptions
}

/** The `pubsub` plugin option: Redis, or a TopicBus of your own. */
export type PubSubOptions = { redis: RedisBusOptions, bus?: undefined } | { bus: (deliver: BusDelivery, log: BusLogger) => TopicBus, redis?: undefined }

/** The plugin options that are not route defaults. */
const PLUGIN_ONLY_OPTION_NAMES = new Set(['closeGracePeriod', 'headersTimeout', 'pubsub'])

/** Plugin default of `readLimit`: 1 MiB, far below the engine's 16 MiB, since a server reads untrusted input. */
export const DEFAULT_PLUGIN_READ_LIMIT = 1024 * 1024
/** Default of `closeGracePeriod`, in milliseconds. */
export const DEFAULT_CLOSE_GRACE_PERIOD = 5000

/** Everything a websocket route needs at run time, resolved once when the route is declared. */
export interface RouteSettings {
  upgrader: Upgrader
  pingInterval: number
  onInvalidMessage: InvalidMessagePolicy
  errorHandler: WebsocketErrorHandler | undefined
  /** The resolved permessage-deflate setting, undefined when off. */
  compression: CompressionOptions | undefined
}

/** Route options that are not connection options: the handshake's, then the plugin's own. */
// A Record of every key, so that this fails to compile when RouteWebsocketOptions gains an option not named here.
const ROUTE_ONLY_OPTION_NAMES = Object.keys({
  checkOrigin: true,
  subprotocols: true,
  selectSubprotocol: true,
  handshakeTimeout: true,
  headers: true,
  compression: true,
  pingInterval: true,
  onInvalidMessage: true,
  errorHandler: true
} satisfies Record<Exclude<keyof RouteWebsocketOptions, keyof ConnOptions>, true>)

const ROUTE_OPTION_NAMES = new Set<string>([...CONN_OPTION_NAMES, ...ROUTE_ONLY_OPTION_NAMES])
// Keys Fastify itself puts in a plugin's options object.
const REGISTER_OPTION_NAMES = new Set(['prefix', 'logLevel', 'logSerializers'])

/** Checks the plugin options, throwing a TypeError or RangeError that names the bad one. */
export function validatePluginOptions (options: WsconnPluginOptions): void {
  checkKnownKeys(options, 'plugin option', (name) => PLUGIN_ONLY_OPTION_NAMES.has(name) || REGISTER_OPTION_NAMES.has(name))
  if (options.closeGracePeriod !== undefined) checkMilliseconds('closeGracePeriod', options.closeGracePeriod)
  if (options.headersTimeout !== undefined) checkMilliseconds('headersTimeout', options.headersTimeout)
  if (options.pubsub !== undefined) checkPubSub(options.pubsub)
  resolveRouteSettings(options, undefined)
}

/**
 * Merges a route's `websocket` value over the plugin defaults (a route value replaces the plugin's;
 * nothing is merged deeper) and builds the route's Upgrader, so a bad setting fails at declaration.
 */
export function resolveRouteSettings (defaults: RouteWebsocketOptions, route: true | RouteWebsocketOptions | undefined, hub?: Hub): RouteSettings {
  const overrides = route === true || route === undefined ? {} : route
  if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) {
    throw new TypeError('websocket: the route option websocket must be true or an object')
  }
  checkKnownKeys(overrides, 'route option', () => false)
  const merged: RouteWebsocketOptions = { ...defaults }
  for (const [name, value] of Object.entries(overrides)) {
    if (value !== undefined) (merged as Record<string, unknown>)[name] = value
  }
  if (merged.pingInterval !== undefined) checkMilliseconds('pingInterval', merged.pingInterval)
  const policy = merged.onInvalidMessage ?? 'close'
  if (policy !== 'close' && policy !== 'reject') {
    throw new TypeError(`websocket: option onInvalidMessage must be 'close' or 'reject', got ${JSON.stringify(policy)}`)
  }
  if (merged.errorHandler !== undefined && typeof merged.errorHandler !== 'function') {
    throw new TypeError('websocket: option errorHandler must be a function')
  }
  if (Array.isArray(merged.compression)) throw new TypeError('websocket: option compression must be a boolean or an object')
  const compression = resolveCompression(merged.compression)
  const upgrader = new Upgrader({
    ...pickConnOptions(merged),
    readLimit: merged.readLimit ?? DEFAULT_PLUGIN_READ_LIMIT,
    checkOrigin: originChecker(merged.checkOrigin),
    subprotocols: merged.subprotocols,
    selectSubprotocol: merged.selectSubprotocol,
    handshakeTimeout: merged.handshakeTimeout,
    headers: merged.headers,
    compression,
    hub
  })
  return {
    upgrader,
    pingInterval: merged.pingInterval ?? 0,
    onInvalidMessage: policy,
    errorHandler: merged.errorHandler,
    compression
  }
}

function checkPubSub (pubsub: PubSubOptions): void {
  const given = typeof pubsub === 'object' && pubsub !== null ? Object.keys(pubsub).filter((key) => (pubsub as Record<string, unknown>)[key] !== undefined) : []
  if (given.length !== 1 || (given[0] !== 'redis' && given[0] !== 'bus')) {
    throw new TypeError('websocket: option pubsub must be { redis: { url } } or { bus } (a TopicBus)')
  }
  if (given[0] === 'bus' && typeof pubsub.bus !== 'function') {
    throw new TypeError('websocket: option pubsub.bus must be a function (deliver, log) => TopicBus')
  }
}

/** Turns an OriginPolicy into the Upgrader's checkOrigin function (undefined = the same-origin default). */
export function originChecker (policy: OriginPolicy | undefined): UpgraderOptions['checkOrigin'] {
  if (policy === undefined || policy === true) return undefined
  if (policy === false) return allowAnyOrigin
  if (typeof policy === 'function') return policy
  if (!Array.isArray(policy)) throw new TypeError('websocket: option checkOrigin must be a boolean, an array of origins or a function')
  const allowed = new Set<string>()
  for (const origin of policy) {
    const normalized = typeof origin === 'string' ? normalizeOrigin(origin) : undefined
    if (normalized === undefined) throw new TypeError(`websocket: option checkOrigin has an invalid origin ${JSON.stringify(origin)}`)
    allowed.add(normalized)
  }
  return (req) => {
    if (checkSameOrigin(req)) return true
    const origin = req.headers.origin
    return origin !== undefined && allowed.has(normalizeOrigin(origin) ?? '')
  }
}

function allowAnyOrigin (): boolean {
  return true
}

/** The scheme://host[:port] form of an origin, lower-cased with default ports dropped; undefined when it does not parse. */
function normalizeOrigin (origin: string): string | undefined {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return undefined
  }
  return url.origin === 'null' ? undefined : url.origin
}

/** What @fastify/websocket's (and ws's) option names are called here, for the error a migrating user gets. */
const MIGRATION_HINTS: Record<string, string> = {
  options: "@fastify/websocket's ws options have their own names here: readLimit for maxPayload, compression for " +
    'perMessageDeflate, checkOrigin (or an onRequest hook) for verifyClient, subprotocols or selectSubprotocol for handleProtocols',
  maxPayload: 'the largest message is readLimit here',
  perMessageDeflate: 'permessage-deflate is the compression option here',
  verifyClient: 'use checkOrigin, or an onRequest or preHandler hook (its reply is the HTTP answer)',
  handleProtocols: 'use subprotocols, or selectSubprotocol to choose one yourself'
}

function checkKnownKeys (options: object, kind: string, alsoAllowed: (name: string) => boolean): void {
  for (const name of Object.keys(options)) {
    if (!ROUTE_OPTION_NAMES.has(name) && !alsoAllowed(name)) {
      const hint = Object.hasOwn(MIGRATION_HINTS, name) ? ` (${MIGRATION_HINTS[name]!})` : ''
      throw new TypeError(`websocket: unknown ${kind} ${JSON.stringify(name)}${hint}`)
    }
  }
}
