// RedisBus options: their checks, defaults, and how a Redis is named in logs and errors.
import type { createClient, createCluster, RedisClusterOptions } from 'redis'

/** A node-redis client, as RedisBus uses its own. */
export type RedisClient = ReturnType<typeof createClient>
/** A node-redis cluster client, as RedisBus uses its own. */
export type RedisClusterClient = ReturnType<typeof createCluster>

/**
 * What RedisBus needs of a node-redis client the app made with `createClient()`, whatever its
 * modules, scripts or RESP version: its options (to name it in logs) and `duplicate()`.
 */
export interface AppRedisClient {
  readonly options?: { readonly url?: string, readonly socket?: object } | undefined
  duplicate (...args: never[]): unknown
}

/**
 * What RedisBus needs of a node-redis cluster client the app made with `createCluster()`: its
 * options (to name it in logs and to give its duplicate RedisBus's own defaults) and `duplicate()`.
 */
export interface AppRedisClusterClient {
  readonly _options: { readonly rootNodes: readonly object[], readonly defaults?: { readonly socket?: object } | undefined }
  duplicate (...args: never[]): unknown
}

/** Where RedisBus finds Redis and how it uses it; one of `url`, `client` or `cluster` is required. */
export interface RedisBusOptions {
  /** `redis[s]://[[username][:password]@]host[:port][/db]`; RedisBus opens (and closes) two connections to it. */
  url?: string
  /**
   * A client the app already has: RedisBus `duplicate()`s it (same address, credentials, TLS) for
   * its two connections and never uses or closes the app's own.
   */
  client?: AppRedisClient
  /**
   * A Redis Cluster: the options of node-redis's `createCluster()` (`rootNodes: [{ url }, ...]`,
   * `defaults` for every node's connections, ...), or a cluster client the app already has, which
   * RedisBus `duplicate()`s and never uses or closes. RedisBus opens one cluster client: a
   * connection per master for publishes, and one per master that owns a subscribed channel.
   * Needs sharded pub/sub (Redis >= 7).
   */
  cluster?: RedisClusterOptions | AppRedisClusterClient
  /** Prepended to every topic to make its Redis channel name. Default `'wsconn:'`. */
  channelPrefix?: string
  /**
   * Sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7), which Redis Cluster needs to scale pub/sub:
   * `'auto'` uses it when the server supports it. Every process sharing a topic must use the same
   * mode. With `cluster` it is always used (`false` is refused). Default `'auto'`.
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
  readonly source:
  | { readonly url: string }
  | { readonly client: AppRedisClient }
  | { readonly clusterOptions: RedisClusterOptions }
  | { readonly clusterClient: AppRedisClusterClient }
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
    throw new TypeError(`${OPTION} must be an object with url, client or cluster`)
  }
  const { url, client, cluster, channelPrefix = DEFAULT_CHANNEL_PREFIX, sharded = 'auto', connectTimeout = DEFAULT_CONNECT_TIMEOUT } = options
  const given = [url, client, cluster].filter((value) => value !== undefined).length
  if (given > 1) throw new TypeError(`${OPTION} takes one of url, client or cluster, not several`)
  if (given === 0) throw new TypeError(`${OPTION} needs url, client or cluster`)
  if (typeof channelPrefix !== 'string') throw new TypeError(`${OPTION}.channelPrefix must be a string, got ${typeof channelPrefix}`)
  if (sharded !== true && sharded !== false && sharded !== 'auto') {
    throw new TypeError(`${OPTION}.sharded must be true, false or 'auto', got ${String(sharded)}`)
  }
  if (!Number.isSafeInteger(connectTimeout) || connectTimeout < 1) {
    throw new RangeError(`${OPTION}.connectTimeout must be an integer >= 1, got ${String(connectTimeout)}`)
  }
  const common = { channelPrefix, sharded, connectTimeout }
  if (url !== undefined) return { ...common, source: { url }, name: nameOfUrl(url) }
  if (cluster !== undefined) return resolveCluster(cluster, common)
  if (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function') {
    throw new TypeError(`${OPTION}.client must be a node-redis client (from the redis package's createClient())`)
  }
  if (isClusterClient(client)) {
    throw new TypeError(`${OPTION}.client is a Redis Cluster client (from createCluster()): pass it as pubsub.redis.cluster`)
  }
  return { ...common, source: { client }, name: nameOfNode(client.options) }
}

function resolveCluster (cluster: RedisClusterOptions | AppRedisClusterClient, common: Omit<ResolvedRedisBusOptions, 'source' | 'name'>): ResolvedRedisBusOptions {
  if (common.sharded === false) {
    throw new TypeError(`${OPTION}.sharded cannot be false with cluster: Redis Cluster spreads pub/sub over its shards only with SSUBSCRIBE/SPUBLISH`)
  }
  if (typeof cluster !== 'object' || cluster === null) {
    throw new TypeError(`${OPTION}.cluster must be createCluster() options ({ rootNodes: [{ url }] }) or a cluster client, got ${String(cluster)}`)
  }
  if (isClusterClient(cluster)) {
    return { ...common, source: { clusterClient: cluster }, name: nameOfCluster(cluster._options.rootNodes) }
  }
  if (typeof (cluster as { duplicate?: unknown }).duplicate === 'function') {
    throw new TypeError(`${OPTION}.cluster is a single-node client (from createClient()): pass it as pubsub.redis.client, or give createCluster() options or client`)
  }
  const { rootNodes } = cluster as { rootNodes?: unknown }
  if (!Array.isArray(rootNodes) || rootNodes.length === 0) {
    throw new TypeError(`${OPTION}.cluster.rootNodes must be a non-empty array of node options ({ url } or { socket: { host, port } })`)
  }
  for (const node of rootNodes as unknown[]) {
    if (typeof node !== 'object' || node === null) {
      throw new TypeError(`${OPTION}.cluster.rootNodes must hold node options ({ url } or { socket: { host, port } }), got ${String(node)}`)
    }
  }
  return { ...common, source: { clusterOptions: cluster as RedisClusterOptions }, name: nameOfCluster(rootNodes as object[]) }
}

function isClusterClient (value: object): value is AppRedisClusterClient {
  const options = (value as { _options?: { rootNodes?: unknown } })._options
  return typeof (value as { duplicate?: unknown }).duplicate === 'function' && Array.isArray(options?.rootNodes)
}

// A cluster is named by its root nodes, the addresses the app gave, never their credentials.
function nameOfCluster (rootNodes: readonly object[]): string {
  return `cluster ${rootNodes.map((node, i) => nameOfNode(node, `${OPTION}.cluster.rootNodes[${i}].url`)).join(',')}`
}

function nameOfUrl (url: unknown, option = `${OPTION}.url`): string {
  if (typeof url !== 'string') throw new TypeError(`${option} must be a string, got ${typeof url}`)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TypeError(`${option} is not a URL: ${JSON.stringify(redactLoosely(url))}`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new TypeError(`${option} must start with redis:// or rediss://, got ${parsed.protocol}//`)
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

/** A node named by its client options ({ url } or { socket }), as createClient() and rootNodes take them. */
function nameOfNode (options: AppRedisClient['options'], option?: string): string {
  const { url, socket } = options ?? {}
  if (url !== undefined) return nameOfUrl(url, option)
  if (socket !== undefined && 'path' in socket && typeof socket.path === 'string') return `unix:${socket.path}`
  const tcp = socket as { host?: string, port?: number, tls?: boolean } | undefined
  return `${tcp?.tls === true ? 'rediss' : 'redis'}://${tcp?.host ?? 'localhost'}:${tcp?.port ?? 6379}`
}
