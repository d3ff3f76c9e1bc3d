import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Conn, JsonCodec } from '../conn/conn.js'
import { MessageValidationError } from './errors.js'
import type { InvalidMessagePolicy } from './options.js'

/** A validator as Fastify's compilers build it (Ajv's, or a custom compiler's `{ value, error }` form). */
type Validator = ((data: unknown) => unknown) & { errors?: unknown }
/** A serializer as Fastify's serializer compilers build it. */
type Serializer = (data: never) => string

/** The message schemas a route declared. */
export interface MessageSchemas {
  incoming?: unknown
  outgoing?: unknown
}

/**
 * Compiles `schema.incoming` with the route's validator compiler and `schema.outgoing` with its
 * serializer compiler, through Fastify's public compile API, so a user's compilers apply and
 * each schema is compiled once per route, and returns them as the JSON codec the connection is
 * made with: `readJSON()` parses, validates (taking the value a compiler may return, e.g. with
 * defaults applied) and applies the invalid-message policy; `writeJSON(v)` uses the
 * schema-compiled serializer when `schema.outgoing` exists, so only properties the schema names
 * are ever sent. Throws what the compiler throws.
 */
export function compileCodec (
  request: FastifyRequest, reply: FastifyReply, schemas: MessageSchemas | undefined, policy: InvalidMessagePolicy
): JsonCodec {
  const incoming = schemas?.incoming
  const outgoing = schemas?.outgoing
  return new RouteJsonCodec(
    incoming === undefined ? undefined : request.compileValidationSchema(incoming as Record<string, unknown>, 'body') as Validator,
    outgoing === undefined ? undefined : reply.compileSerializationSchema(outgoing as Record<string, unknown>, '200'),
    policy
  )
}

/** A route's compiled schemas as the connection's JSON codec: one object, no closures per connection. */
class RouteJsonCodec implements JsonCodec {
  readonly #validate: Validator | undefined
  readonly #policy: InvalidMessagePolicy
  readonly encode: ((value: unknown) => string) | undefined

  constructor (validate: Validator | undefined, serialize: Serializer | undefined, policy: InvalidMessagePolicy) {
    this.#validate = validate
    this.#policy = policy
    this.encode = serialize === undefined ? undefined : (value) => serialize(value as never)
  }

  async decode (conn: Conn, data: Buffer): Promise<unknown> {
    let value: unknown
    try {
      value = JSON.parse(data.toString())
    } catch (err) {
      return this.#refuse(conn, new MessageValidationError('invalid JSON', undefined, { cause: err }))
    }
    if (this.#validate === undefined) return value
    const outcome = await runValidator(this.#validate, value)
    if (outcome instanceof MessageValidationError) return this.#refuse(conn, outcome)
    return outcome.value
  }

  #refuse (conn: Conn, error: MessageValidationError): never {
    if (this.#policy === 'close') conn.close(error.closeCode, error.reason)
    throw error
  }
}

/**
 * Runs a compiled validator with Fastify's conventions: `false` means invalid (details in
 * `validate.errors`), `{ error }` means invalid, `{ value }` replaces the value; a promise is
 * pass/fail only, and its rejection means invalid. A validator that throws is a server bug, so
 * the throw propagates.
 */
async function runValidator (validate: Validator, value: unknown): Promise<{ value: unknown } | MessageValidationError> {
  const result = validate(value)
  if (isThenable(result)) {
    try {
      if (await result === false) return invalid(validate.errors)
    } catch (err) {
      return invalid(err)
    }
    return { value }
  }
  if (result === false) return invalid(validate.errors)
  if (typeof result === 'object' && result !== null) {
    const custom = result as { error?: unknown, value?: unknown }
    if (custom.error !== undefined && custom.error !== null && custom.error !== false) return invalid(custom.error)
    if ('value' in custom) return { value: custom.value }
  }
  return { value }
}

function invalid (details: unknown): MessageValidationError {
  return new MessageValidationError(`invalid message: ${describe(details)}`, details)
}

/** One line naming what failed, in Fastify's "body/name must be string" style with "message" as the root. */
function describe (details: unknown): string {
  if (details instanceof Error) return details.message
  if (Array.isArray(details) && details.length > 0) {
    return details.map((item: { instancePath?: unknown, message?: unknown }) => {
      const path = typeof item?.instancePath === 'string' ? item.instancePath : ''
      const text = typeof item?.message === 'string' ? item.message : 'is invalid'
      return `message${path} ${text}`
    }).join(', ')
  }
  return 'does not match the schema'
}

/** Whether `value` is a promise or another thenable, as `await` would treat it. */
export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
