// guardHandshakes on plain node:http and node:https servers: connections that stall before their
// first request headers (or in their TLS handshake) are destroyed, while clients that complete a
// request (an upgrade, or plain HTTP over keep-alive) are never touched afterwards.
import t from 'tap'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { Agent, createServer, type IncomingMessage, type Server } from 'node:http'
import { Agent as HttpsAgent, createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import WebSocket from 'ws'
import { DEFAULT_HEADERS_TIMEOUT, guardHandshakes } from '../lib/handshake-guard.js'
import { Upgrader } from '../lib/upgrader.js'
import { allClosed, echo, eventually, get, stalledClients, trackServerSockets } from './helpers/raw-clients.js'
import { selfSignedCert } from './helpers/tls.js'
import { unrefTimerWatch } from './helpers/timers.js'

type Teardown = { teardown: (fn: () => unknown) => void }

const HALF_UPGRADE = 'GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
const cert = selfSignedCert()

/** Serves `/echo` upgrades with an echoing Upgrader and answers plain requests with 'plain'. */
function echoServer<S extends Server | HttpsServer> (server: S): S {
  const upgrader = new Upgrader({ checkOrigin: () => true })
  server.on('request', (_req, res) => { res.end('plain') })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrader.upgrade(req, socket, head).then(async (conn) => {
      for (;;) {
        const { type, data } = await conn.readMessage()
        await conn.writeMessage(type, data)
      }
    }).catch(() => {})
  })
  return server
}

async function listen (t: Teardown, server: Server | HttpsServer): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return (server.address() as AddressInfo).port
}

async function echoOnce (url: string, options: WebSocket.ClientOptions = {}): Promise<{ ws: WebSocket, echoed: string }> {
  const ws = new WebSocket(url, options)
  await once(ws, 'open')
  return { ws, echoed: await echo(ws, 'echo me') }
}

/** Raw TCP connections that never start their TLS handshake. */
async function silentTcp (port: number, count: number): Promise<Socket[]> {
  return await stalledClients(port, count, '')
}

/** TLS connections that complete their handshake, then send half a request and stall. */
async function stalledTls (port: number | string, count: number): Promise<TLSSocket[]> {
  return await Promise.all(Array.from({ length: count }, async () => {
    const socket = typeof port === 'string'
      ? tlsConnect({ path: port, rejectUnauthorized: false })
      : tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    socket.on('error', () => {})
    await once(socket, 'secureConnect')
    socket.write(HALF_UPGRADE)
    return socket
  }))
}

t.test('validation and the default', async (t) => {
  t.equal(DEFAULT_HEADERS_TIMEOUT, 10_000)
  const server = createServer()
  t.throws(() => guardHandshakes(null as never), { name: 'TypeError', message: /node:http or node:https server/ })
  t.throws(() => guardHandshakes({} as never), TypeError)
  for (const bad of [-1, 1.5, 2 ** 31, Number.NaN, '100']) {
    t.throws(() => guardHandshakes(server, { headersTimeout: bad as number }), { name: 'RangeError', message: /headersTimeout must be an integer from 0/ })
  }
  const off = guardHandshakes(server, { headersTimeout: 0 })
  t.equal(server.listenerCount('connection'), 1, '0 turns the guard off: only the server\'s own listener')
  off()
})

t.test('HTTP: stalled connections are destroyed; upgrades and keep-alive requests are served', async (t) => {
  const server = echoServer(createServer())
  const stop = guardHandshakes(server, { headersTimeout: 200 })
  t.teardown(stop)
  const serverSockets = trackServerSockets(server)
  const port = await listen(t, server)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())

  const first = await get(`http://127.0.0.1:${port}/`, agent)
  const { ws, echoed } = await echoOnce(`ws://127.0.0.1:${port}/echo`)
  t.equal(echoed, 'echo me')
  const silent = await stalledClients(port, 10, '')
  const halfRequests = await stalledClients(port, 20, HALF_UPGRADE)
  const halfPlain = await stalledClients(port, 10, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  t.ok(await allClosed([...silent, ...halfRequests, ...halfPlain]), 'every stalled connection was closed by the server')
  // Their deadlines passed after those of the two clients above, which are still served.
  const second = await get(`http://127.0.0.1:${port}/`, agent)
  t.same([first, second], [{ body: 'plain', reused: false }, { body: 'plain', reused: true }], 'keep-alive survives')
  t.equal(await echo(ws, 'still here'), 'still here', 'the WebSocket survives')
  t.ok(await eventually(() => serverSockets.size === 2), 'only the two served connections remain')
  ws.terminate()
})

t.test('HTTPS: stalled TLS handshakes and stalled requests are destroyed; wss and keep-alive work', { skip: cert === undefined ? 'openssl not found' : false }, async (t) => {
  const server = echoServer(createHttpsServer({ ...cert! }))
  const stop = guardHandshakes(server, { headersTimeout: 200 })
  t.teardown(stop)
  const rawSockets = trackServerSockets(server)
  const port = await listen(t, server)
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())

  const first = await get(`https://127.0.0.1:${port}/`, agent)
  const { ws, echoed } = await echoOnce(`wss://127.0.0.1:${port}/echo`, { rejectUnauthorized: false })
  t.equal(echoed, 'echo me')
  const silent = await silentTcp(port, 10)
  const halfHello = await stalledClients(port, 5, '\x16\x03\x01\x02\x00')
  const halfRequests = await stalledTls(port, 10)
  t.ok(await allClosed([...silent, ...halfHello, ...halfRequests]), 'stalled TLS handshakes and stalled requests were closed by the server')
  const second = await get(`https://127.0.0.1:${port}/`, agent)
  t.same([first, second], [{ body: 'plain', reused: false }, { body: 'plain', reused: true }], 'keep-alive survives')
  t.equal(await echo(ws, 'still here'), 'still here', 'the WebSocket survives')
  t.ok(await eventually(() => rawSockets.size === 2), 'only the two served connections remain')
  ws.terminate()
})

t.test('HTTPS over a Unix socket: stalled requests after the TLS handshake are destroyed', { skip: cert === undefined ? 'openssl not found' : process.platform === 'win32' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsconn-guard-'))
  const path = join(dir, 'server.sock')
  const server = echoServer(createHttpsServer({ ...cert! }))
  const stop = guardHandshakes(server, { headersTimeout: 200 })
  server.listen(path)
  await once(server, 'listening')
  t.teardown(() => {
    stop()
    server.closeAllConnections()
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const halfRequests = await stalledTls(path, 5)
  t.ok(await allClosed(halfRequests), 'closed by the server')
  const served = tlsConnect({ path, rejectUnauthorized: false })
  await once(served, 'secureConnect')
  served.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  let text = ''
  served.on('data', (chunk: Buffer) => { text += chunk.toString() })
  await once(served, 'end')
  t.match(text, /200 OK[\s\S]*plain$/)
})

t.test('a guard started while a TLS handshake runs leaves that connection alone', { skip: cert === undefined ? 'openssl not found' : false }, async (t) => {
  const server = echoServer(createHttpsServer({ ...cert! }))
  const port = await listen(t, server)
  const accepted = once(server, 'connection')
  const tcp = netConnect(port, '127.0.0.1')
  await once(tcp, 'connect')
  await accepted
  const stop = guardHandshakes(server, { headersTimeout: 200 })
  t.teardown(stop)
  const socket = tlsConnect({ socket: tcp, rejectUnauthorized: false })
  await once(socket, 'secureConnect')
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  let text = ''
  socket.on('data', (chunk: Buffer) => { text += chunk.toString() })
  await once(socket, 'end')
  t.match(text, /plain$/)
})

t.test('requests that Node hands to other events are seen, and no listener of the guard changes how Node answers', async (t) => {
  const server = createServer((_req, res) => { res.end('plain') })
  const stop = guardHandshakes(server, { headersTimeout: 200 })
  t.teardown(stop)
  const port = await listen(t, server)
  t.equal(server.listenerCount('upgrade'), 0, 'no upgrade listener without the application\'s')

  // Without an upgrade listener, Node serves an Upgrade request as a plain one.
  const h2c = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n')
  t.match(h2c, /^HTTP\/1.1 200 OK[\s\S]*plain$/)

  // An upgrade the application holds past the bound is not cut: the guard follows 'upgrade' now.
  const held: Duplex[] = []
  const onUpgrade = (_req: IncomingMessage, socket: Duplex): void => { held.push(socket) }
  server.on('upgrade', onUpgrade)
  t.equal(server.listenerCount('upgrade'), 2)
  const upgraded = await stalledClients(port, 1, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: custom\r\n\r\n')
  // So is a request whose Expect header the application answers itself.
  const answers: Array<{ end: (body: string) => void }> = []
  server.on('checkContinue', (_req, res) => { answers.push(res) })
  const expecting = await stalledClients(port, 1, 'POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n')
  // A connection that stalls after them has a later deadline: once it is closed, theirs have passed.
  t.ok(await eventually(() => held.length === 1 && answers.length === 1))
  t.ok(await allClosed(await stalledClients(port, 1, HALF_UPGRADE)))
  t.notOk(upgraded[0]!.closed || held[0]!.destroyed, 'the held upgrade is open')
  t.notOk(expecting[0]!.closed, 'the request answered after the bound is open')
  answers[0]!.end('late')
  held[0]!.destroy()

  // A second listener, then removals: the guard keeps listening exactly while the application does.
  const other = (): void => {}
  server.on('upgrade', other)
  t.equal(server.listenerCount('upgrade'), 3)
  server.off('upgrade', onUpgrade)
  t.equal(server.listenerCount('upgrade'), 2)
  server.off('upgrade', other)
  t.equal(server.listenerCount('upgrade'), 0)
  server.on('upgrade', other)
  server.removeAllListeners('upgrade')
  t.equal(server.listenerCount('upgrade'), 0)
  server.on('upgrade', other)
  t.equal(server.listenerCount('upgrade'), 2, 'followed again after removeAllListeners')
  stop()
  t.equal(server.listenerCount('upgrade'), 1, 'stop removes its own listeners')
  t.equal(server.listenerCount('newListener'), 0)

  // A listener there before the guard; removing them all removes the guard's too.
  const early = createServer()
  early.on('upgrade', other)
  const stopEarly = guardHandshakes(early, { headersTimeout: 200 })
  t.equal(early.listenerCount('upgrade'), 2)
  early.removeAllListeners('upgrade')
  t.equal(early.listenerCount('upgrade'), 0)
  early.on('upgrade', other)
  t.equal(early.listenerCount('upgrade'), 2)
  stopEarly()
})

t.test('the server\'s headersTimeout is lowered while guarded and restored after', async (t) => {
  const server = createServer()
  t.equal(server.headersTimeout, 60_000)
  const stop = guardHandshakes(server, { headersTimeout: 5000 })
  t.equal(server.headersTimeout, 5000)
  stop()
  stop()
  t.equal(server.headersTimeout, 60_000, 'restored, once')

  server.headersTimeout = 1000
  const stopTighter = guardHandshakes(server, { headersTimeout: 5000 })
  t.equal(server.headersTimeout, 1000, 'a smaller value stays')
  stopTighter()
  t.equal(server.headersTimeout, 1000)

  server.headersTimeout = 60_000
  const stopChanged = guardHandshakes(server, { headersTimeout: 5000 })
  server.headersTimeout = 20_000
  stopChanged()
  t.equal(server.headersTimeout, 20_000, 'a value the application set meanwhile is kept')
})

t.test('stopping the guard leaves no timer and no listener behind', async (t) => {
  const server = createServer()
  const port = await listen(t, server)
  // Watched from here on: the server's own connection-checking interval started with listen().
  const timers = unrefTimerWatch(t)
  const listeners = server.eventNames().map((name) => [name, server.listenerCount(name)])
  const stop = guardHandshakes(server, { headersTimeout: 60_000 })
  const stalled = await stalledClients(port, 3, HALF_UPGRADE)
  t.ok(await eventually(() => timers.count() === 1), 'one timer is armed for the stalled connections')
  stop()
  t.ok(await eventually(() => timers.count() === 0), 'it is gone once stopped')
  t.same(server.eventNames().map((name) => [name, server.listenerCount(name)]), listeners, 'the server\'s listeners are as before')
  for (const socket of stalled) t.notOk(socket.closed, 'the connections it watched are left as they are')
})

/** Writes `text` on a fresh connection and resolves with everything received once the server ends it. */
async function rawExchange (port: number, text: string): Promise<string> {
  const [socket] = await stalledClients(port, 1, '')
  let received = ''
  socket!.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  socket!.write(text)
  await once(socket!, 'close')
  return received
}
