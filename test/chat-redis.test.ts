// The chat example scaled out: two instances (`npm start` with REDIS_URL) on two ports and one real
// redis-server; members joined on either instance see each other's lines and each other in the
// member list, a nickname is unique across instances, and a room elsewhere hears nothing.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import WebSocket from 'ws'
import { RecordingClient } from './helpers/topic-clients.js'
import { RedisServer, skipWithoutRedis } from './helpers/redis-server.js'

async function startChat (t: { teardown: (fn: () => unknown) => void }, redisUrl: string): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/chat.ts'], {
    env: { ...process.env, PORT: '0', REDIS_URL: redisUrl, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout!.setEncoding('utf8')
  while (!/localhost:(\d+)\//.test(out)) {
    const [chunk] = await once(child.stdout!, 'data') as [string]
    out += chunk
  }
  return Number(/localhost:(\d+)\//.exec(out)![1])
}

async function join (port: number, nick: string, room: string): Promise<RecordingClient> {
  const client = new RecordingClient(new WebSocket(`ws://127.0.0.1:${port}/chat?nick=${nick}&room=${room}`, { origin: `http://127.0.0.1:${port}` }))
  await once(client.ws, 'open')
  return client
}

const parsed = (client: RecordingClient): Array<Record<string, unknown>> => client.texts().map((text) => JSON.parse(text) as Record<string, unknown>)

async function until (check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 25))
  if (!check()) throw new Error('condition not met in 10 s')
}

t.test('two chat instances on one Redis share rooms', { skip: skipWithoutRedis }, async (t) => {
  const redis = await RedisServer.start(t)
  const [portA, portB] = await Promise.all([startChat(t, redis.url), startChat(t, redis.url)])
  const alice = await join(portA, 'alice', 'dev')
  await until(() => parsed(alice).some((m) => m.kind === 'members'))
  const bob = await join(portB, 'bob', 'dev')
  await until(() => parsed(bob).some((m) => m.kind === 'members'))
  const carol = await join(portB, 'carol', 'ops')
  t.same(parsed(bob).find((m) => m.kind === 'members')?.members, ['alice', 'bob'], 'a newcomer on B sees the member on A')
  await until(() => parsed(alice).some((m) => m.kind === 'join' && m.from === 'bob'))

  alice.ws.send(JSON.stringify({ text: 'hello from A' }))
  bob.ws.send(JSON.stringify({ text: 'hello from B' }))
  for (const client of [alice, bob]) {
    await until(() => parsed(client).filter((m) => m.kind === 'message').length === 2)
    t.same(parsed(client).filter((m) => m.kind === 'message').map((m) => `${String(m.from)}: ${String(m.text)}`).sort(),
      ['alice: hello from A', 'bob: hello from B'])
  }
  const taken = await fetch(`http://127.0.0.1:${portA}/chat/check?nick=bob&room=dev`)
  t.equal(taken.status, 409, 'a nickname taken on B is taken on A too')
  t.same(parsed(carol).filter((m) => m.kind !== 'members' && m.kind !== 'join'), [], 'another room heard nothing')

  bob.ws.close()
  await until(() => parsed(alice).some((m) => m.kind === 'leave' && m.from === 'bob'))
  t.equal((await fetch(`http://127.0.0.1:${portA}/chat/check?nick=bob&room=dev`)).status, 200, 'the name is free again')
  alice.ws.close()
  carol.ws.close()
})
