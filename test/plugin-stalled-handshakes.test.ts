// Stalled handshakes (slowloris) against the plugin's `headersTimeout` and both examples: stalled
// connections are closed while normal clients keep being served.
import t from 'tap'
import { once } from 'node:events'
import { Agent } from 'node:http'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { buildChatApp } from '../examples/chat.js'
import { fastifyWsconn, type WsconnPluginOptions } from '../lib/plugin/index.js'
import { listen } from './helpers/plugin.js'
import { startEchoExample } from './helpers/echo-example.js'
import { allClosed, echo, eventually, get, stalledClients, trackServerSockets } from './helpers/raw-clients.js'
import { unrefTimerWatch } from './helpers/timers.js'

type Teardown = { teardown: (fn: () => unknown) => void }

const HALF_UPGRADE = 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'

async function build (t: Teardown, options: WsconnPluginOptions): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, options)
  app.get('/ws', { websocket: true }, async (conn) => {
    for await (const { type, data } of conn) await conn.writeMessage(type, data)
  })
  app.get('/', async () => 'plain')
  return { app, port: await listen(app) }
}

async function openEcho (url: string): Promise<WebSocket> {
  const ws = new WebSocket(url)
  await once(ws, 'open')
  return ws
}

t.test('headersTimeout: stalled connections are destroyed; upgrades and keep-alive clients are served', async (t) => {
  const { app, port } = await build(t, { headersTimeout: 200 })
  const serverSockets = trackServerSockets(app.server)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const first = await get(`http://127.0.0.1:${port}/`, agent)
  const ws = await openEcho(`ws://127.0.0.1:${port}/ws`)
  t.equal(await echo(ws, 'hello'), 'hello')
  const stalled = [
    ...await stalledClients(port, 20, HALF_UPGRADE),
    ...await stalledClients(port, 10, '')
  ]
  // A client that connects while the others stall is served too.
  const during = await openEcho(`ws://127.0.0.1:${port}/ws`)
  t.ok(await allClosed(stalled), 'every stalled connection was closed by the server')
  t.equal(await echo(during, 'during'), 'during')
  t.equal(await echo(ws, 'after'), 'after', 'the first WebSocket survives')
  const second = await get(`http://127.0.0.1:${port}/`, agent)
  t.same([first, second], [{ body: 'plain', reused: false }, { body: 'plain', reused: true }], 'keep-alive survives')
  t.ok(await eventually(() => serverSockets.size === 3), 'only the three served connections remain')
  t.equal(app.server.headersTimeout, 200, "the server's own headersTimeout is lowered to the bound")
  ws.terminate()
  during.terminate()
})

t.test('headersTimeout: validated, plugin-wide, default 10000, 0 turns it off', async (t) => {
  for (const bad of [-1, 1.5, 2 ** 31, '10']) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(fastifyWsconn, { headersTimeout: bad as number }) }, { name: 'RangeError', message: /option headersTimeout must be an integer/ })
    await app.close()
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  t.equal(app.server.headersTimeout, 10_000, 'on by default: the server header timeout was lowered to 10 s')
  t.throws(() => app.get('/r', { websocket: { headersTimeout: 100 } as never }, () => {}), { message: /unknown route option "headersTimeout"/ })
  const off = Fastify()
  t.teardown(() => off.close())
  const connectionListeners = off.server.listenerCount('connection')
  await off.register(fastifyWsconn, { headersTimeout: 0 })
  t.equal(off.server.headersTimeout, 60_000, 'untouched')
  t.equal(off.server.listenerCount('connection'), connectionListeners, 'no guard')
})

t.test('app.close() stops the guard: no timer and no listener left behind', async (t) => {
  const { app, port } = await build(t, { headersTimeout: 200 })
  const listenersBefore = app.server.listenerCount('connection')
  const timers = unrefTimerWatch(t)
  const stalled = await stalledClients(port, 5, HALF_UPGRADE)
  t.ok(await eventually(() => timers.count() === 1), 'one timer armed for the stalled connections')
  await app.close()
  t.ok(await allClosed(stalled), 'the stalled connections were closed')
  t.ok(await eventually(() => timers.count() === 0), 'no timer is left')
  t.equal(app.server.listenerCount('connection'), listenersBefore - 1, "only the guard's listener went")
  t.equal(app.server.listenerCount('request'), 1, "only Fastify's request listener remains")
})

t.test('the chat example is guarded by the plugin default', async (t) => {
  const app = await buildChatApp()
  t.teardown(() => app.close())
  await app.ready()
  t.equal(app.server.headersTimeout, 10_000)
})

t.test('the echo example closes stalled connections and keeps serving', async (t) => {
  const { child, port } = await startEchoExample({ HEADERS_TIMEOUT: '200' })
  t.teardown(() => { child.kill() })
  const ws = await openEcho(`ws://127.0.0.1:${port}/echo`)
  const stalled = await stalledClients(port, 20, HALF_UPGRADE.replace('/ws', '/echo'))
  t.ok(await allClosed(stalled), 'every stalled connection was closed by the server')
  t.equal(await echo(ws, 'still served'), 'still served')
  ws.terminate()
})
