// RedisBus's connections to a Redis Cluster: one node-redis cluster client. It routes each SPUBLISH
// by its channel's slot to that slot's master, keeps one sharded-subscriber connection per master
// that owns a subscribed channel, follows MOVED and slot migrations, and its node connections
// reconnect (and resubscribe) by themselves. This file keeps publishes bounded while a node is
// away, reports node losses, and resyncs subscriptions when a node is back.
import { setTimeout as sleep } from 'node:timers/promises'
import type { RedisClusterOptions } from 'redis'
import type { RedisClient, RedisClusterClient } from './redis-options.js'
import { reconnectDelay } from './redis-link.js'
import { loadNodeRedis, supportsSharded, type ChannelListener, type ConnectionsContext, type RedisConnections } from './redis-connections.js'

/** How node-redis names a cluster node in its node-* events. */
interface NodeInfo { readonly host: string, readonly port: number }

/** A node-redis cluster client with RedisBus's settings, reconnecting by itself. */
export class ClusterConnections implements RedisConnections {
  readonly sharded = true
  readonly #context: ConnectionsContext
  readonly #cluster: RedisClusterClient
  /** The cluster with a timeout that covers the wait for the reply too (see NodeConnections). */
  readonly #publishCluster: RedisClusterClient
  /** Nodes (host:port) whose connection was lost and has not come back since. */
  readonly #down = new Set<string>()
  lastError: Error | undefined
  #opened = false
  /** Ends the wait between startup attempts when the bus gives up or closes. */
  readonly #stop = new AbortController()
  /** Discovery failures are logged once until a node is back: node-redis retries them every few seconds. */
  #discoveryFailureLogged = false

  constructor (context: ConnectionsContext) {
    this.#context = context
    this.#cluster = this.#createCluster()
    this.#publishCluster = this.#cluster.withCommandOptions({ timeout: context.options.connectTimeout, rejectInFlight: true }) as unknown as RedisClusterClient
    this.#cluster.on('error', (err: Error) => { this.#onDiscoveryFailed(err) })
    this.#cluster.on('node-error', (err: Error, node: NodeInfo) => { this.#onNodeError(err, node) })
    this.#cluster.on('node-ready', (node: NodeInfo) => { this.#onNodeReady(node) })
    /* c8 ignore next 3 -- node-redis gives up moving a sharded subscription only when the cluster keeps answering MOVED past maxCommandRedirections, which a test cluster cannot be made to do */
    this.#cluster.on('sharded-channel-moved-error', (err: Error, channel: string) => {
      context.log.error({ err, channel, redis: context.options.name }, 'websocket: pubsub could not follow a sharded channel to its new Redis Cluster node; messages on it are not received')
    })
  }

  get isUp (): boolean {
    return this.#cluster.isReady
  }

  get canPublish (): boolean {
    return this.#cluster.isReady
  }

  async open (): Promise<void> {
    // node-redis tries each root node once; keep trying (the bus bounds the wait) so a process
    // may start while the cluster does.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#cluster.connect()
        break
      } catch (err) {
        // lastError is the cause node-redis reported ('error'), not its "All the root nodes are unavailable".
        await sleep(reconnectDelay(attempt), undefined, { signal: this.#stop.signal }).catch(() => { throw err })
      }
    }
    const master = this.#cluster.masters[0]!
    if (!await supportsSharded(await this.#cluster.nodeClient(master) as unknown as RedisClient)) {
      throw new Error(`websocket: pubsub needs sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7) on Redis Cluster at ${this.#context.options.name}; node ${master.address} has none`)
    }
    this.#opened = true
  }

  publish (channel: string, envelope: Buffer): Promise<unknown> {
    return this.#publishCluster.sPublish(channel, envelope)
  }

  // A node the cluster client has no connection to yet (new after a topology change) is connected
  // before the command is even queued, and that wait has no timeout of its own.
  async bounded (sent: Promise<unknown>): Promise<unknown> {
    const { connectTimeout } = this.#context.options
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`no reply within ${connectTimeout} ms (timed out)`)) }, connectTimeout)
    })
    try {
      return await Promise.race([sent, late])
    } finally {
      clearTimeout(timer)
    }
  }

  subscribe (channel: string, listener: ChannelListener): Promise<void> {
    return this.#cluster.sSubscribe(channel, listener, true)
  }

  unsubscribe (channel: string, listener: ChannelListener): Promise<void> {
    return this.#cluster.sUnsubscribe(channel, listener, true)
  }

  async close (): Promise<void> {
    this.#stop.abort()
    // Closing forgets the nodes, so after a stall they are destroyed from this list. A client that
    // is still draining already says it is not open: destroy() ends it (and passes over the others).
    const clients = this.#nodeClients()
    let timer: NodeJS.Timeout | undefined
    const stalled = new Promise<boolean>((resolve) => { timer = setTimeout(resolve, this.#context.options.connectTimeout, false) })
    const closed = this.#cluster.close().then(() => true, () => true)
    const inTime = await Promise.race([closed, stalled])
    clearTimeout(timer)
    if (!inTime) for (const client of clients) client.destroy()
  }

  destroy (): void {
    this.#stop.abort()
    this.#cluster.destroy()
  }

  #createCluster (): RedisClusterClient {
    const { source, connectTimeout } = this.#context.options
    // Every node connection refuses commands while it is down instead of queueing them, and keeps
    // reconnecting: a node restarted on its address comes back without the app doing anything.
    const withBusDefaults = (defaults: RedisClusterOptions['defaults']): RedisClusterOptions['defaults'] => ({
      ...defaults,
      disableOfflineQueue: true,
      socket: { ...defaults?.socket, connectTimeout, reconnectStrategy: reconnectDelay }
    })
    // Pub/sub never reads from replicas: no connections to them.
    if ('clusterOptions' in source) {
      const options = source.clusterOptions
      return loadNodeRedis().createCluster({ ...options, useReplicas: false, defaults: withBusDefaults(options.defaults) }) as unknown as RedisClusterClient
    }
    const app = (source as { clusterClient: unknown }).clusterClient as RedisClusterClient
    return app.duplicate({ useReplicas: false, defaults: withBusDefaults(app._options.defaults) }) as unknown as RedisClusterClient
  }

  /** Every node connection the cluster client has now: commands and sharded subscribers, per master (replicas have none, see #createCluster). */
  #nodeClients (): Array<{ destroy: () => void }> {
    const clients = []
    for (const node of this.#cluster.masters) {
      if (node.client !== undefined) clients.push(node.client)
      if (node.pubSub !== undefined) clients.push(node.pubSub.client)
    }
    return clients
  }

  #onDiscoveryFailed (err: Error): void {
    this.lastError = err
    if (!this.#opened || this.#discoveryFailureLogged) return
    this.#discoveryFailureLogged = true
    this.#context.log.warn({ err, redis: this.#context.options.name }, 'websocket: pubsub could not refresh the Redis Cluster topology; retrying')
  }

  #onNodeError (err: Error, node: NodeInfo): void {
    this.lastError = err
    const address = `${node.host}:${node.port}`
    if (!this.#opened || this.#down.has(address)) return
    this.#down.add(address)
    this.#context.log.warn({ err, redis: this.#context.options.name, node: address }, 'websocket: pubsub lost its connection to a Redis Cluster node; publishes to its slots fail and messages on its channels are not received until it is back')
  }

  #onNodeReady (node: NodeInfo): void {
    if (!this.#opened) return
    const address = `${node.host}:${node.port}`
    this.#discoveryFailureLogged = false
    // Each node has a command and a subscriber connection; whichever comes back, subscriptions
    // that failed meanwhile are sent again (the subscriber connection queues them until it is up).
    this.#context.restored()
    if (!this.#down.delete(address)) return
    this.#context.log.info({ redis: this.#context.options.name, node: address }, 'websocket: pubsub Redis Cluster node connection restored; messages published while it was down were not delivered (at-most-once)')
  }
}
