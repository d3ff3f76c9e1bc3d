import type { FastifyReply, FastifyRequest } from 'fastify'
import { useJsonCodec, type Conn, type JsonCodec as ConnJsonCodec } from '../conn/conn.js'
import { MessageValidationError } from './errors.js'
import type { InvalidMessagePolicy } from './options.js'

/** A validator as Fastify's compilers build it (Ajv's, or a custom compiler's `{ value, error }` form). */
type Validator = ((data: unknown) => unknown) & { errors?: unknown }
/** A serializer as Fastify's serializer compilers build it. */
type Serializer = (data: never) => string

/** The compiled message schemas of one route. */
export interface JsonCodec {
  validate: Validator | undefined
  serialize: Serializer | undefined
}

/** The message schemas a route declared. */
export interface MessageSchemas {
  incoming?: unknown
  outgoing?: unknown
}

/**
 * Compiles `schema.incoming` with the route's validator compiler and `schema.outgoing` with its
 * serializer compiler, through Fastify's public compile API, so a user's compilers apply and
 * each schema is compiled once per route. Throws what the compiler throws.
 */
export function compileCodec (request: FastifyRequest, reply: FastifyReply, schemas: MessageSchemas | undefined): JsonCodec {
  const incoming = schemas?.incoming
  const outgoing = schemas?.outgoing
  return {
    validate: incoming === undefined ? undefined : request.compileValidationSchema(incoming as Record<string, unknown>, 'body') as Validator,
    serialize: outgoing === undefined ? undefined : reply.compileSerializationSchema(outgoing as Record<string, unknown>, '200')
  }
}

/**
 * Gives a connection the route's JSON behaviour: `readJSON()` parses, validates (taking the value
 * a compiler may return, e.g. with defaults applied) and applies the invalid-message policy;
 * `writeJSON(v)` uses the schema-compiled serializer when `schema.outgoing` exists, so only
 * properties the schema names are ever sent.
 */
export function installJsonCodec (conn: Conn, codec: JsonCodec, policy: InvalidMessagePolicy): void {
  useJsonCodec(conn, new RouteJsonCodec(codec, policy))
}

/** A route's compiled schemas as the connection's JSON codec: one object, no closures per connection. */
class RouteJsonCodec implements ConnJsonCodec {
  readonly #validate: Validator | undefined
  readonly #policy: InvalidMessagePolicy
  readonly encode: ((value: unknown) => string) | undefined

  constructor (codec: JsonCodec, policy: InvalidMessagePolicy) {
    this.#validate = codec.validate
    this.#policy = policy
    const serialize = codec.serialize
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

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
