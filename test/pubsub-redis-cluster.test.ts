// The plugin's Redis bus on a real Redis Cluster (three masters, built with redis-cli --cluster
// create): two apps, each with its own cluster client, and `ws` clients over TCP. Topics whose
// channels live on different shards cross between the apps exactly once, in order, byte for byte;
// each channel is subscribed on its owning node only while it has local subscribers; a master
// killed and restarted on its port makes publishes to its slots fail fast meanwhile, and its
// subscriptions come back by themselves without any client reconnecting.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient, createCluster } from 'redis'
import WebSocket from 'ws'
import { fastifyWsconn, PublishError } from '../lib/index.js'
import { RedisBus } from '../lib/pubsub/redis-bus.js'
import { resolveRedisBusOptions, type RedisBusOptions } from '../lib/pubsub/redis-options.js'
import { RecordingClient } from './helpers/topic-clients.js'
import { RedisCluster } from './helpers/redis-cluster.js'
import { redisServerMajor, RedisServer, skipWithoutRedis } from './helpers/redis-server.js'
import { recordingDelivery, recordingLogger, startBus, waitFor } from './helpers/pubsub-bus.js'

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

/** An app with the plugin on `cluster`: GET /sub?topics=a,b subscribes a websocket to each topic. */
async function startApp (t: { teardown: (fn: () => unknown) => void }, cluster: RedisBusOptions['cluster']): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, { checkOrigin: false, pubsub: { redis: { cluster, connectTimeout: 10_000 } } })
  app.get<{ Querystring: { topics: string } }>('/sub', { websocket: true }, async (conn, request) => {
    for (const topic of request.query.topics.split(',')) conn.subscribe(topic)
    conn.send('subscribed')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

async function subscriber (app: FastifyInstance, topics: string[]): Promise<RecordingClient> {
  const { port } = app.server.address() as AddressInfo
  const client = new RecordingClient(new WebSocket(`ws://127.0.0.1:${port}/sub?topics=${topics.join(',')}`))
  await client.waitFor(1)
  client.received.shift()
  return client
}

/** How many connections (one per app) `node` has subscribed to `channel`, and the channels it has. */
async function shardSubscribers (node: RedisServer, channel: string): Promise<number> {
  return Number((await node.cli('PUBSUB', 'SHARDNUMSUB', channel))[1])
}

t.test('cluster options are checked, and a cluster is named by its root nodes without credentials', async (t) => {
  const resolved = resolveRedisBusOptions({ cluster: { rootNodes: [{ url: 'redis://u:pw@10.0.0.1:7000' }, { socket: { host: 'db', port: 7001 } }] } })
  t.equal(resolved.name, 'cluster redis://10.0.0.1:7000,redis://db:7001')
  t.equal(resolveRedisBusOptions({ cluster: createCluster({ rootNodes: [{ url: 'rediss://a:pw@h:1' }] }) }).name, 'cluster rediss://h:1')
  const bad: Array<[unknown, RegExp]> = [
    [{}, /^websocket: option pubsub\.redis needs url, client or cluster$/],
    [{ url: 'redis://a', cluster: { rootNodes: [{ url: 'redis://a' }] } }, /takes one of url, client or cluster, not several/],
    [{ cluster: { rootNodes: [{ url: 'redis://a' }] }, sharded: false }, /sharded cannot be false with cluster/],
    [{ cluster: 'redis://a' }, /pubsub\.redis\.cluster must be createCluster\(\) options \(\{ rootNodes: \[\{ url \}\] \}\) or a cluster client, got redis:\/\/a/],
    [{ cluster: null }, /cluster must be createCluster\(\) options/],
    [{ cluster: {} }, /pubsub\.redis\.cluster\.rootNodes must be a non-empty array/],
    [{ cluster: { rootNodes: [] } }, /rootNodes must be a non-empty array/],
    [{ cluster: { rootNodes: ['redis://a'] } }, /rootNodes must hold node options \(\{ url \} or \{ socket: \{ host, port \} \}\), got redis:\/\/a/],
    [{ cluster: { rootNodes: [{ url: 'http://a' }] } }, /pubsub\.redis\.cluster\.rootNodes\[0\]\.url must start with redis:\/\/ or rediss:\/\//],
    [{ cluster: createClient() }, /cluster is a single-node client \(from createClient\(\)\): pass it as pubsub\.redis\.client/],
    [{ client: createCluster({ rootNodes: [{ url: 'redis://a' }] }) }, /client is a Redis Cluster client \(from createCluster\(\)\): pass it as pubsub\.redis\.cluster/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => resolveRedisBusOptions(options as RedisBusOptions), { name: 'TypeError', message }, String(message))
  }
})

t.test('a Redis Cluster that cannot be reached fails the start within connectTimeout, naming why', { skip: skipWithoutRedis }, async (t) => {
  const gone = await RedisServer.start(t)
  await gone.kill()
  const bus = new RedisBus({ cluster: { rootNodes: [{ url: `redis://app:s3cret@127.0.0.1:${gone.port}` }] }, connectTimeout: 300 }, () => {}, recordingLogger())
  const error = await bus.ready().then(() => undefined, (err: Error) => err)
  t.match(error, { message: `websocket: pubsub could not connect to Redis at cluster redis://127.0.0.1:${gone.port} within 300 ms: connect ECONNREFUSED 127.0.0.1:${gone.port}` })
  await bus.close()
})

t.test('two apps share topics through a real 3-master Redis Cluster', { skip: skipWithoutRedis }, async (t) => {
  if (await redisServerMajor() < 7) {
    t.comment('skipped: redis-server < 7 has no sharded pub/sub, which the bus needs on a cluster')
    return
  }
  const cluster = await RedisCluster.start(t, 3)
  // One app gives options, the other a cluster client of its own (duplicated, never used or closed).
  const appCluster = createCluster({ rootNodes: cluster.rootNodes, defaults: { socket: { keepAlive: true } } })
  const a = await startApp(t, { rootNodes: cluster.rootNodes })
  const b = await startApp(t, appCluster)

  // Topics whose channels hash to three different shards.
  const topics: string[] = []
  const owners: RedisServer[] = []
  for (let i = 0; owners.length < 3; i++) {
    const owner = await cluster.ownerOf(`wsconn:topic-${i}`)
    if (owners.includes(owner)) continue
    topics.push(`topic-${i}`)
    owners.push(owner)
  }

  t.test('each publish crosses to the other app once, in order, binary-safe, on every shard', async (t) => {
    // One websocket per app and topic: order is promised per publisher and topic, and each shard is its own connection.
    const inA = await Promise.all(topics.map((topic) => subscriber(a, [topic])))
    const inB = await Promise.all(topics.map((topic) => subscriber(b, [topic])))
    await waitFor(async () => (await Promise.all(topics.map((topic, i) => shardSubscribers(owners[i]!, `wsconn:${topic}`)))).every((n) => n === 2), 'both apps subscribed on each owning node')
    for (const [i, owner] of owners.entries()) {
      const others = owners.filter((other) => other !== owner)
      const channel = `wsconn:${topics[i]!}`
      t.same(await owner.cli('PUBSUB', 'SHARDCHANNELS', channel), [channel], `${channel} is subscribed on its owner`)
      t.same([...await others[0]!.cli('PUBSUB', 'SHARDCHANNELS', channel), ...await others[1]!.cli('PUBSUB', 'SHARDCHANNELS', channel)], [], 'and nowhere else')
    }

    const expected = topics.map((): Array<{ binary: boolean, data: Buffer }> => [])
    for (let n = 0; n < 50; n++) {
      for (const [i, topic] of topics.entries()) {
        const text = `${topic} #${n} héllo ✓`
        await a.websocketPublish(topic, text)
        await a.websocketPublish(topic, allBytes)
        expected[i]!.push({ binary: false, data: Buffer.from(text) }, { binary: true, data: allBytes })
      }
    }
    // b's marker reaches a through the same shard connection that would carry echoes of a's own publishes.
    for (const topic of topics) await b.websocketPublish(topic, `end of ${topic}`)
    for (const [i, topic] of topics.entries()) {
      const marker = { binary: false, data: Buffer.from(`end of ${topic}`) }
      await inA[i]!.waitFor(expected[i]!.length + 1)
      await inB[i]!.waitFor(expected[i]!.length + 1)
      t.same(inA[i]!.received, [...expected[i]!, marker], `${topic}: a received its own publishes once (locally, never back from Redis), then b's`)
      // b's own marker is delivered locally at once, possibly before a's last messages have crossed.
      t.same(inB[i]!.received.filter((message) => !message.data.equals(marker.data)), expected[i], `${topic}: b received every publish of a once, in order, text as text and every byte value intact`)
    }

    for (const client of [...inA, ...inB]) client.ws.close()
    for (const [i, owner] of owners.entries()) {
      await waitFor(async () => (await owner.cli('PUBSUB', 'SHARDCHANNELS')).length === 0, `${topics[i]!} unsubscribed on its owner after the last subscriber left`)
    }
    t.pass('every channel unsubscribed after the last local subscriber left')
  })

  t.test('a master killed and restarted: its slots fail fast meanwhile, then its subscriptions come back by themselves', async (t) => {
    const [lost, kept] = [topics[0]!, topics[1]!]
    const lostOwner = owners[0]!
    const inB = await subscriber(b, [lost, kept])
    await waitFor(async () => await shardSubscribers(lostOwner, `wsconn:${lost}`) === 1 && await shardSubscribers(owners[1]!, `wsconn:${kept}`) === 1, 'subscribed')

    await lostOwner.kill()
    const local = await subscriber(a, [lost])
    const error = await a.websocketPublish(lost, 'while the master is away').then(() => undefined, (err: unknown) => err)
    t.ok(error instanceof PublishError, 'the publish rejects with a PublishError')
    t.match(error, { result: { delivered: 1 }, message: /reached 1 local subscriber\(s\) but not the other processes: websocket: pubsub cannot publish: Redis at cluster .* is unavailable: (The client is offline|Socket closed unexpectedly)$/ }, 'at once (the node is offline), not after the 10 s timeout')
    await local.waitFor(1)
    t.same(local.texts(), ['while the master is away'], 'local delivery goes on')
    await a.websocketPublish(kept, 'another shard still works')
    await inB.waitFor(1)
    t.same(inB.texts(), ['another shard still works'])

    await lostOwner.restart()
    await waitFor(async () => await shardSubscribers(lostOwner, `wsconn:${lost}`) === 2, "both apps' subscriptions back on the restarted master")
    await cluster.waitUntilOk()
    // The publisher's connection to the restarted master reconnects on its own schedule.
    await waitFor(async () => await a.websocketPublish(lost, 'after the restart').then(() => true, () => false), 'a publish to the restarted master')
    await inB.waitFor(2)
    t.same(inB.texts(), ['another shard still works', 'after the restart'], 'the same websocket receives again: no client reconnected')
    inB.ws.close()
    local.ws.close()
  })

  t.test('closing both apps leaves no subscription, connection, socket or timer', async (t) => {
    await a.close()
    await b.close()
    for (const node of cluster.masters) {
      t.same(await node.cli('PUBSUB', 'SHARDCHANNELS'), [], `no channel left on ${node.port}`)
      // redis-cli's own connection is the only client left.
      t.equal((await node.cli('CLIENT', 'LIST')).length, 1, `no connection left on ${node.port}`)
    }
    t.equal(appCluster.isOpen, false, "the app's own cluster client was never opened")
    await waitFor(() => !process.getActiveResourcesInfo().some((name) => name === 'TCPSocketWrap' || name === 'Timeout'), 'no socket or timer in this process')
    t.pass('no socket or timer left')
  })
})

t.test('the whole cluster down and back: publishes fail fast on every shard, one topology warning, subscriptions return', { skip: skipWithoutRedis }, async (t) => {
  if (await redisServerMajor() < 7) {
    t.comment('skipped: redis-server < 7 has no sharded pub/sub')
    return
  }
  const cluster = await RedisCluster.start(t, 3)
  const log = recordingLogger()
  const received = recordingDelivery()
  const publisher = await startBus(t, { cluster: { rootNodes: cluster.rootNodes }, connectTimeout: 10_000 })
  const subscriber = await startBus(t, { cluster: { rootNodes: cluster.rootNodes }, connectTimeout: 10_000 }, received.deliver, log)
  t.equal(subscriber.sharded, true)
  const topics: string[] = []
  const owners = new Set<RedisServer>()
  for (let i = 0; owners.size < 3; i++) {
    const owner = await cluster.ownerOf(`wsconn:t${i}`)
    if (owners.has(owner)) continue
    owners.add(owner)
    topics.push(`t${i}`)
    subscriber.subscribe(`t${i}`)
  }
  const allSubscribed = async (): Promise<boolean> => (await Promise.all(topics.map(async (topic) => await shardSubscribers(await cluster.ownerOf(`wsconn:${topic}`), `wsconn:${topic}`)))).every((n) => n === 1)
  await waitFor(allSubscribed, 'every topic subscribed on its owner')

  await Promise.all(cluster.masters.map((master) => master.kill()))
  await waitFor(() => log.entries.filter(({ msg }) => msg.includes('lost its connection to a Redis Cluster node')).length === 3, 'every node reported lost')
  for (const topic of topics) {
    // Offline, or (when its socket's end is not read yet) closed under the command: never the 10 s timeout.
    const error = await publisher.publish(topic, { binary: false, data: Buffer.from('lost') }).then(() => undefined, (err: Error) => err)
    t.match(error?.message, /is unavailable: (The client is offline|Socket closed unexpectedly)$/, `${topic}: rejected at once`)
  }
  // node-redis refreshes the topology after a node has been reconnecting for 5 s; with every node down that fails, repeatedly.
  await waitFor(() => log.entries.some(({ msg }) => msg.includes('could not refresh the Redis Cluster topology')), 'the topology warning', 15_000)

  await Promise.all(cluster.masters.map((master) => master.restart()))
  await cluster.waitUntilOk()
  await waitFor(allSubscribed, 'every topic subscribed again, by itself')
  for (const topic of topics) {
    await waitFor(async () => await publisher.publish(topic, { binary: false, data: Buffer.from(`back on ${topic}`) }).then(() => true, () => false), `a publish on ${topic}`)
  }
  await received.count(3)
  t.same(received.received.map(({ topic, message }) => [topic, message.data.toString()]), topics.map((topic) => [topic, `back on ${topic}`]))
  const nodes = cluster.masters.map((master) => `127.0.0.1:${master.port}`).sort()
  t.same(log.entries.filter(({ level }) => level === 'warn').map(({ obj, msg }) => [obj.node, msg.includes('lost') ? 'lost' : 'topology']).sort(), [
    ...nodes.map((node) => [node, 'lost']), [undefined, 'topology']
  ].sort(), 'one loss per node and one topology warning for the whole outage')
  t.same(log.entries.filter(({ level }) => level === 'info').map(({ obj }) => obj.node).sort(), nodes, 'one restore per node')
})

t.test('a cluster without sharded pub/sub refuses to start, naming the node', { skip: skipWithoutRedis }, async (t) => {
  const cluster = await RedisCluster.start(t, 1, ['--rename-command', 'SPUBLISH', ''])
  const bus = new RedisBus({ cluster: { rootNodes: cluster.rootNodes } }, () => {}, recordingLogger())
  const { url, port } = cluster.masters[0]!
  // A one-node cluster never met another node, so it does not know its own IP and reports none.
  await t.rejects(bus.ready(), { message: `websocket: pubsub needs sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7) on Redis Cluster at cluster ${url}; node :${port} has none` })
  await bus.close()
})

t.test('close() does not wait for a cluster node that stopped answering', { skip: skipWithoutRedis }, async (t) => {
  const cluster = await RedisCluster.start(t, 1)
  const [node] = cluster.masters
  const log = recordingLogger()
  const bus = new RedisBus({ cluster: { rootNodes: cluster.rootNodes }, connectTimeout: 300 }, () => {}, log)
  await bus.ready()
  bus.subscribe('first')
  await waitFor(async () => await shardSubscribers(node!, 'wsconn:first') === 1, 'subscribed')
  // Every command waits while the node is paused (redis-cli's too), and a subscription has no timeout.
  await node!.cli('CLIENT', 'PAUSE', '2000', 'ALL')
  bus.subscribe('second')
  await sleep(100) // lets the SSUBSCRIBE reach the paused node
  await bus.close()
  t.equal(await node!.cli('CLIENT', 'LIST').then((clients) => clients.length), 1, "when the pause is over, only redis-cli's own connection is left: close() ended the others itself")
  // The node sees the closed connections once the pause is over.
  await waitFor(async () => (await node!.cli('CLIENT', 'LIST')).length === 1, "only redis-cli's own connection on the node")
  t.same(await node!.cli('PUBSUB', 'SHARDCHANNELS'), [], 'no channel left')
  t.same(log.entries, [])
})

t.test("a subscribed channel's slot moved to another master: node-redis follows it, and publishes follow MOVED", { skip: skipWithoutRedis }, async (t) => {
  if (await redisServerMajor() < 7) {
    t.comment('skipped: redis-server < 7 has no sharded pub/sub')
    return
  }
  const cluster = await RedisCluster.start(t, 3) // redis-cli --cluster create wants three masters
  const received = recordingDelivery()
  const publisher = await startBus(t, { cluster: { rootNodes: cluster.rootNodes } })
  const subscriber = await startBus(t, { cluster: { rootNodes: cluster.rootNodes } }, received.deliver)
  const channel = 'wsconn:moving'
  const from = await cluster.ownerOf(channel)
  const to = cluster.masters.find((master) => master !== from)!
  subscriber.subscribe('moving')
  await waitFor(async () => await shardSubscribers(from, channel) === 1, 'subscribed on the owner')
  await publisher.publish('moving', { binary: false, data: Buffer.from('before') })
  await received.count(1)

  // What redis-cli --cluster reshard does for a slot without keys: mark it importing and migrating,
  // then hand it over, target first. Only a target that was importing bumps its config epoch, so
  // that the other nodes take its claim over the source's instead of the other way round.
  const slot = (await from.cli('CLUSTER', 'KEYSLOT', channel))[0]!
  const [toId] = await to.cli('CLUSTER', 'MYID')
  const [fromId] = await from.cli('CLUSTER', 'MYID')
  await to.cli('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId!)
  await from.cli('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId!)
  await to.cli('CLUSTER', 'SETSLOT', slot, 'NODE', toId!)
  await from.cli('CLUSTER', 'SETSLOT', slot, 'NODE', toId!)
  // The nodes learn of the new owner one after the other: ask until they agree.
  await waitFor(async () => await cluster.ownerOf(channel).catch(() => undefined) === to, 'the slot moved')
  await waitFor(async () => await shardSubscribers(to, channel) === 1 && await shardSubscribers(from, channel) === 0, 'the subscription on the new owner only')
  await publisher.publish('moving', { binary: false, data: Buffer.from('after') })
  await received.count(2)
  t.same(received.received.map(({ message }) => message.data.toString()), ['before', 'after'])
  subscriber.unsubscribe('moving')
  await waitFor(async () => await shardSubscribers(to, channel) === 0, 'unsubscribed on the new owner')
  t.pass('the last local subscriber leaving unsubscribes on the new owner')
})
