import createError from '@fastify/error'

// Every refusal the plugin answers over HTTP, with a stable code, in one place (fastify-org's
// convention): Fastify's error handler sends them with their status, and `headers` when set.

/** A plain HTTP request to a websocket-only route: 426, with `Upgrade: websocket`. */
export const FST_WS_UPGRADE_REQUIRED = createError('FST_WS_UPGRADE_REQUIRED', 'This route only accepts WebSocket connections', 426)

/** A WebSocket upgrade request to a route that serves plain HTTP only: 400. */
export const FST_WS_NOT_WEBSOCKET_ROUTE = createError('FST_WS_NOT_WEBSOCKET_ROUTE', 'This route does not accept WebSocket connections', 400)

/**
 * A request to a websocket route declared before the plugin was loaded, which therefore cannot
 * accept WebSocket connections: 500, with a message that names the fix.
 */
export const FST_WS_ROUTE_DECLARED_TOO_EARLY = createError(
  'FST_WS_ROUTE_DECLARED_TOO_EARLY',
  'route %s %s was declared before fastify-wsconn was loaded, so it cannot accept WebSocket connections: ' +
    'declare websocket routes after `await app.register(fastifyWsconn)`, or inside a plugin registered after it',
  500
)

/**
 * A received message that is not JSON or fails the route's `schema.incoming`. With the default
 * `onInvalidMessage: 'close'` the connection is already closing with `closeCode` (1007) when
 * `readJSON()` rejects with it; with `'reject'` the connection is untouched.
 */
export class MessageValidationError extends Error {
  override readonly name = 'MessageValidationError'
  /** A stable machine-readable error code. */
  readonly code = 'ERR_WS_INVALID_MESSAGE'
  /** The close code used for this failure: 1007 (invalid payload data). */
  readonly closeCode = 1007
  /** What the validator reported (Ajv's error objects, or a custom compiler's error), when it reported something. */
  readonly validation: unknown

  constructor (message: string, validation?: unknown, options?: ErrorOptions) {
    super(`websocket: ${message}`, options)
    this.validation = validation
  }

  /** The close reason sent to the peer: the message without the library prefix. */
  get reason (): string {
    return this.message.slice('websocket: '.length)
  }
}
