// Topics across processes through a real redis-server: two server processes share topics; every
// subscriber in either gets each publish exactly once, in publish order, text as text and every
// byte value intact; only topics with subscribers are subscribed in Redis; with Redis killed,
// publishes fail fast while local delivery goes on, and once it is back the subscriptions return
// without any client reconnecting; SIGTERM closes the app and the process exits with nothing left.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { extname, join } from 'node:path'
import WebSocket from 'ws'
import { RecordingClient } from './helpers/topic-clients.js'
import { RedisServer, skipWithoutRedis } from './helpers/redis-server.js'

interface ServerProcess { child: ChildProcess, port: number, log: string[] }

async function startServer (t: { teardown: (fn: () => unknown) => void }, redisUrl: string): Promise<ServerProcess> {
  const script = join(__dirname, 'helpers', `topic-server${extname(__filename)}`)
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const log: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { log.push(chunk) })
  const [line] = await once(child.stdout!, 'data') as [Buffer]
  const port = Number(line.toString().split('\n')[0])
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { log.push(chunk) })
  if (!Number.isInteger(port) || port <= 0) throw new Error(`the server printed ${line.toString()}`)
  return { child, port, log }
}

async function subscriber (server: ServerProcess, topic: string): Promise<RecordingClient> {
  const client = new RecordingClient(new WebSocket(`ws://127.0.0.1:${server.port}/sub?topic=${topic}`))
  await client.waitFor(1)
  client.received.shift()
  return client
}

async function publish (server: ServerProcess, topic: string, data: string | Buffer): Promise<{ status: number, body: any }> {
  const binary = typeof data !== 'string'
  const response = await fetch(`http://127.0.0.1:${server.port}/publish?topic=${topic}${binary ? '&binary=1' : ''}`, {
    method: 'POST',
    headers: { 'content-type': binary ? 'application/octet-stream' : 'text/plain' },
    body: data
  })
  return { status: response.status, body: await response.json() }
}

t.test('two processes share topics through Redis', { skip: skipWithoutRedis }, async (t) => {
  const redis = await RedisServer.start(t)
  const a = await startServer(t, redis.url)
  const b = await startServer(t, redis.url)
  const subscribers = [await subscriber(a, 'chat'), await subscriber(a, 'chat'), await subscriber(b, 'chat'), await subscriber(b, 'chat')]
  const elsewhere = await subscriber(b, 'other')
  // Redis 7 has sharded pub/sub, which the bus uses by default ('auto').
  const channels = async (): Promise<string[]> => (await redis.cli('PUBSUB', 'SHARDCHANNELS')).sort()
  const processesOn = async (channel: string): Promise<number> => Number((await redis.cli('PUBSUB', 'SHARDNUMSUB', channel))[1])
  t.same(await channels(), ['wsconn:chat', 'wsconn:other'])
  t.same([await processesOn('wsconn:chat'), await processesOn('wsconn:other')], [2, 1], 'one subscription per process and topic')

  // Publishes alternate between the two processes; each process's own order must hold everywhere.
  const COUNT = 200
  for (let n = 0; n < COUNT; n++) {
    const from = n % 2 === 0 ? a : b
    const { status, body } = await publish(from, 'chat', `${from === a ? 'a' : 'b'}${n}`)
    t.equal(status, 200)
    if (body.delivered !== 2) t.fail(`publish ${n} reached ${body.delivered} local subscribers`)
  }
  const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  t.equal((await publish(a, 'chat', everyByte)).status, 200)
  await Promise.all(subscribers.map(async (client) => await client.waitFor(COUNT + 1)))
  for (const [i, client] of subscribers.entries()) {
    const texts = client.received.slice(0, COUNT)
    t.ok(texts.every((m) => !m.binary), `subscriber ${i}: text stays text`)
    const fromA = texts.map((m) => m.data.toString()).filter((s) => s.startsWith('a'))
    const fromB = texts.map((m) => m.data.toString()).filter((s) => s.startsWith('b'))
    t.same(fromA, Array.from({ length: COUNT / 2 }, (_, k) => `a${2 * k}`), `subscriber ${i}: every publish of A once, in order`)
    t.same(fromB, Array.from({ length: COUNT / 2 }, (_, k) => `b${2 * k + 1}`), `subscriber ${i}: every publish of B once, in order`)
    t.same(client.received[COUNT], { binary: true, data: everyByte }, `subscriber ${i}: all 256 byte values, as binary`)
  }
  t.same(elsewhere.received, [], 'another topic heard nothing')

  elsewhere.ws.close()
  await once(elsewhere.ws, 'close')
  await waitFor(async () => !(await channels()).includes('wsconn:other'))
  t.same(await channels(), ['wsconn:chat'], 'the last leaver unsubscribed the topic in Redis')

  // Redis goes away: publishes fail fast, local subscribers still get them.
  await redis.kill()
  const down = await publish(a, 'chat', 'while redis is down')
  t.equal(down.status, 503)
  t.match(down.body.message, /reached 2 local subscriber\(s\) but not the other processes/)
  t.same(down.body.result, { delivered: 2, dropped: 0, closed: 0 })
  await Promise.all([subscribers[0]!.waitFor(COUNT + 2), subscribers[1]!.waitFor(COUNT + 2)])
  t.equal(subscribers[0]!.texts().at(-1), 'while redis is down')

  // Back again: the same clients receive publishes from the other process, nobody reconnected.
  await redis.restart()
  let delivered = false
  for (let attempt = 0; attempt < 100 && !delivered; attempt++) {
    const { status } = await publish(b, 'chat', `after ${attempt}`)
    if (status === 200) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      delivered = subscribers[0]!.texts().some((text) => text.startsWith('after'))
    } else {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  t.ok(delivered, 'a publish of B reaches A again after the restart')
  t.equal(subscribers.filter((client) => client.ws.readyState === WebSocket.OPEN).length, 4, 'no client was disconnected')
  const logged = a.log.join('')
  t.match(logged, /pubsub lost its Redis subscriber connection/, 'the loss was logged')
  t.match(logged, /pubsub Redis subscriber connection restored; messages published while it was down were not delivered/, '... and the return, with what it means')

  // SIGTERM: app.close() sends 1001, unsubscribes, closes its Redis connections; the process then
  // exits by itself, which it could not with a timer or socket left.
  const closes = subscribers.slice(0, 2).map(async (client) => await once(client.ws, 'close'))
  a.child.kill('SIGTERM')
  const [code] = await once(a.child, 'exit') as [number | null]
  t.equal(code, 0, 'process A exited by itself')
  t.same((await Promise.all(closes)).map(([closeCode]) => closeCode), [1001, 1001])
  await waitFor(async () => await processesOn('wsconn:chat') === 1)
  t.same(await channels(), ['wsconn:chat'], "A's subscription is gone, B's remains")
})

async function waitFor (check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error('condition not met in 5 s')
}
