import type {
  ContextConfigDefault, FastifyBaseLogger, FastifyInstance, FastifyRequest, FastifySchema, FastifyTypeProvider,
  FastifyTypeProviderDefault, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase, RawServerDefault,
  RouteGenericInterface, RouteOptions
} from 'fastify'
import type { CallSerializerTypeProvider, CallValidatorTypeProvider } from 'fastify/types/type-provider'
import type { Conn, ReadOptions } from '../conn/conn.js'
import type { Hub, PublishData, PublishOptions, PublishResult } from '../hub/hub.js'
import type { InjectWSOptions } from './inject.js'
import type { RouteWebsocketOptions } from './options.js'

/**
 * A Conn whose JSON helpers are typed by the route: `readJSON()` resolves with `Incoming` (the
 * static type of `schema.incoming`) and `writeJSON` accepts only `Outgoing` (that of `schema.outgoing`).
 */
export interface TypedConn<Incoming = unknown, Outgoing = unknown> extends Conn {
  /** Reads the next message as JSON, validated against `schema.incoming`. */
  readJSON<T = Incoming>(options?: ReadOptions): Promise<T>
  /** Sends `value` serialised by the `schema.outgoing` serializer. */
  writeJSON(value: Outgoing): Promise<void>
  /** Publishes `value` to a topic as JSON, serialised once by the `schema.outgoing` serializer. */
  publishJSON(topic: string, value: Outgoing): Promise<PublishResult>
}

// Fastify's own helpers (not exported by it): `undefined` becomes `unknown`, and keyof spreads over unions.
type UndefinedToUnknown<T> = [T] extends [undefined] ? unknown : T
type KeysOf<T> = T extends unknown ? keyof T : never

/**
 * The type `readJSON()` resolves with: the route generic's `Incoming` when given, otherwise what
 * the instance's type provider makes of `schema.incoming` (`unknown` without a provider).
 */
export type ResolveIncomingMessage<
  TypeProvider extends FastifyTypeProvider,
  SchemaCompiler extends FastifySchema,
  RouteGeneric extends RouteGenericInterface
> = UndefinedToUnknown<KeysOf<RouteGeneric['Incoming']> extends never
  ? CallValidatorTypeProvider<TypeProvider, SchemaCompiler['incoming']>
  : RouteGeneric['Incoming']>

/**
 * The type `writeJSON` accepts: the route generic's `Outgoing` when given, otherwise what the
 * instance's type provider makes of `schema.outgoing` (`unknown` without a provider).
 */
export type ResolveOutgoingMessage<
  TypeProvider extends FastifyTypeProvider,
  SchemaCompiler extends FastifySchema,
  RouteGeneric extends RouteGenericInterface
> = UndefinedToUnknown<KeysOf<RouteGeneric['Outgoing']> extends never
  ? CallSerializerTypeProvider<TypeProvider, SchemaCompiler['outgoing']>
  : RouteGeneric['Outgoing']>

/**
 * A websocket route handler: called with the connection after the 101 and the Fastify request
 * (params, query and headers already validated), `this` being the route's Fastify instance.
 * It may be async; a throw or rejection closes the connection with 1011.
 */
export type WebsocketHandler<
  RawServer extends RawServerBase = RawServerDefault,
  RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
  RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  ContextConfig = ContextConfigDefault,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
  Logger extends FastifyBaseLogger = FastifyBaseLogger
> = (
  this: FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>,
  conn: TypedConn<
    ResolveIncomingMessage<TypeProvider, SchemaCompiler, RouteGeneric>,
    ResolveOutgoingMessage<TypeProvider, SchemaCompiler, RouteGeneric>
  >,
  request: FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>
) => void | Promise<void>

/** The `websocket` value that makes a route a websocket-only route. */
type WebsocketFlag = true | RouteWebsocketOptions

declare module 'fastify' {
  interface FastifySchema {
    /** JSON schema of the messages clients send: what `conn.readJSON()` validates and returns. */
    incoming?: unknown
    /** JSON schema of the messages the server sends: what `conn.writeJSON(v)` accepts and serialises. */
    outgoing?: unknown
  }

  interface RouteGenericInterface {
    /** Type of the messages clients send, when no type provider infers it from `schema.incoming`. */
    Incoming?: unknown
    /** Type of the messages the server sends, when no type provider infers it from `schema.outgoing`. */
    Outgoing?: unknown
  }

  interface RouteShorthandOptions<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    /**
     * `true` or per-route settings make the route a websocket route: its handler (or `wsHandler`)
     * serves upgrades, and a plain GET gets 426 unless `wsHandler` is used beside `handler`.
     */
    websocket?: boolean | RouteWebsocketOptions
    /** Serves the upgrades of a route whose `handler` serves plain HTTP on the same URL. */
    wsHandler?: WebsocketHandler<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>
  }

  interface RouteShorthandMethod<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    /** Declares a websocket-only route: `handler(conn, request)` serves its upgrades. */
    <RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      path: string,
      opts: RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger> &
      { websocket: WebsocketFlag, wsHandler?: undefined },
      handler: WebsocketHandler<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
    /** Declares a websocket-only route with its handler among the options. */
    <RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      path: string,
      opts: RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger> &
      {
        websocket: WebsocketFlag
        wsHandler?: undefined
        handler: WebsocketHandler<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }

  interface FastifyInstance<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    Logger extends FastifyBaseLogger = FastifyBaseLogger,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
  > {
    /**
     * Opens a client connection to a route without a listening port, through the same parsing,
     * routing, hooks and handshake as a network client; rejects with a HandshakeError (status,
     * headers, body) when the server answers anything but 101.
     */
    injectWS(path?: string, options?: InjectWSOptions): Promise<Conn>
    /** Every open websocket connection of the application, from its 101 until its socket closes. */
    readonly websocketConnections: ReadonlySet<Conn>
    /** The topics of this application's connections (`conn.subscribe`), and its bus to other processes when `pubsub` is set. */
    readonly websocketHub: Hub
    /**
     * Sends `data` (a string as text, bytes as binary, or a PreparedMessage) to every connection
     * subscribed to `topic`, in every process when `pubsub` is set; framed and compressed once.
     * See `Hub.publish`: it never waits for a slow subscriber, and ignoring the promise is safe.
     */
    websocketPublish(topic: string, data: PublishData, options?: PublishOptions): Promise<PublishResult>
    /** Publishes `value` as one JSON text message, serialised once (by `serialize` when given, else JSON.stringify). */
    websocketPublishJSON<T = unknown>(topic: string, value: T, serialize?: (value: T) => string): Promise<PublishResult>
    /** How many connections of this process are subscribed to `topic`. */
    websocketSubscriberCount(topic: string): number
    /** Declares a websocket-only route in full form: `handler(conn, request)` serves its upgrades. */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      opts: Omit<RouteOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>,
      'handler' | 'websocket' | 'wsHandler'> & {
        websocket: WebsocketFlag
        wsHandler?: undefined
        handler: WebsocketHandler<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }

  interface FastifyRequest {
    /** True when the request is a WebSocket upgrade (hooks can tell upgrades from plain requests). */
    ws: boolean
  }
}
