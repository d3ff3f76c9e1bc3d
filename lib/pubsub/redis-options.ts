// RedisBus options: their checks, defaults, and how a Redis is named in logs and errors.
import type { createClient } from 'redis'

/** A node-redis client, as RedisBus uses its own. */
export type RedisClient = ReturnType<typeof createClient>

/**
 * What RedisBus needs of a node-redis client the app made with `createClient()`, whatever its
 * modules, scripts or RESP version: its options (to name it in logs) and `duplicate()`.
 */
export interface AppRedisClient {
  readonly options?: { readonly url?: string, readonly socket?: object } | undefined
  duplicate (...args: never[]): unknown
}

/** Where RedisBus finds Redis and how it uses it; `url` or `client` is required. */
export interface RedisBusOptions {
  /** `redis[s]://[[username][:password]@]host[:port][/db]`; RedisBus opens (and closes) two connections to it. */
  url?: string
  /**
   * A client the app already has: RedisBus `duplicate()`s it (same address, credentials, TLS) for
   * its two connections and never uses or closes the app's own.
   */
  client?: AppRedisClient
  /** Prepended to every topic to make its Redis channel name. Default `'wsconn:'`. */
  channelPrefix?: string
  /**
   * Sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7), which Redis Cluster needs to scale pub/sub:
   * `'auto'` uses it when the server supports it. Every process sharing a topic must use the same
   * mode. Default `'auto'`.
   */
  sharded?: boolean | 'auto'
  /**
   * Milliseconds `ready()` waits for Redis at startup; also the longest a publish waits for Redis
   * before it rejects. Default 5000.
   */
  connectTimeout?: number
}

/** Default of `RedisBusOptions.channelPrefix`. */
export const DEFAULT_CHANNEL_PREFIX = 'wsconn:'
/** Default of `RedisBusOptions.connectTimeout`. */
export const DEFAULT_CONNECT_TIMEOUT = 5000

/** RedisBusOptions checked, with defaults filled in. */
export interface ResolvedRedisBusOptions {
  readonly source: { readonly url: string } | { readonly client: AppRedisClient }
  readonly channelPrefix: string
  readonly sharded: boolean | 'auto'
  readonly connectTimeout: number
  /** The Redis as logs and errors name it: its address, never its credentials. */
  readonly name: string
}

const OPTION = 'websocket: option pubsub.redis'

/** Checks `options` and fills in defaults; throws a TypeError or RangeError naming the bad option. */
export function resolveRedisBusOptions (options: RedisBusOptions): ResolvedRedisBusOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${OPTION} must be an object with url or client`)
  }
  const { url, client, channelPrefix = DEFAULT_CHANNEL_PREFIX, sharded = 'auto', connectTimeout = DEFAULT_CONNECT_TIMEOUT } = options
  if (url !== undefined && client !== undefined) throw new TypeError(`${OPTION} takes url or client, not both`)
  if (url === undefined && client === undefined) throw new TypeError(`${OPTION} needs url or client`)
  if (typeof channelPrefix !== 'string') throw new TypeError(`${OPTION}.channelPrefix must be a string, got ${typeof channelPrefix}`)
  if (sharded !== true && sharded !== false && sharded !== 'auto') {
    throw new TypeError(`${OPTION}.sharded must be true, false or 'auto', got ${String(sharded)}`)
  }
  if (!Number.isSafeInteger(connectTimeout) || connectTimeout < 1) {
    throw new RangeError(`${OPTION}.connectTimeout must be an integer >= 1, got ${String(connectTimeout)}`)
  }
  const common = { channelPrefix, sharded, connectTimeout }
  if (url !== undefined) return { ...common, source: { url }, name: nameOfUrl(url) }
  if (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function') {
    throw new TypeError(`${OPTION}.client must be a node-redis client (from the redis package's createClient())`)
  }
  return { ...common, source: { client }, name: nameOfClient(client) }
}

function nameOfUrl (url: unknown): string {
  if (typeof url !== 'string') throw new TypeError(`${OPTION}.url must be a string, got ${typeof url}`)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TypeError(`${OPTION}.url is not a URL: ${JSON.stringify(redactLoosely(url))}`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new TypeError(`${OPTION}.url must start with redis:// or rediss://, got ${parsed.protocol}//`)
  }
  parsed.username = ''
  parsed.password = ''
  return parsed.href
}

// An unparsable URL may still hold a password: drop everything up to the last '@'.
function redactLoosely (url: string): string {
  const at = url.lastIndexOf('@')
  return at === -1 ? url : url.slice(at + 1)
}

function nameOfClient (client: AppRedisClient): string {
  const { url, socket } = client.options ?? {}
  if (typeof url === 'string') return nameOfUrl(url)
  if (socket !== undefined && 'path' in socket && typeof socket.path === 'string') return `unix:${socket.path}`
  const tcp = socket as { host?: string, port?: number, tls?: boolean } | undefined
  return `${tcp?.tls === true ? 'rediss' : 'redis'}://${tcp?.host ?? 'localhost'}:${tcp?.port ?? 6379}`
}
