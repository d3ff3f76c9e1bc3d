import t from 'tap'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import WebSocket from 'ws'
import type { Conn } from '../lib/conn/conn.js'
import { Upgrader, type UpgraderOptions } from '../lib/upgrader.js'
import { HandshakeError, TimeoutError } from '../lib/protocol/errors.js'
import { eventually, rawClient, trackServerSockets, upgradeRequest } from './helpers/raw-clients.js'
import { clientFrame } from './helpers/wire-client.js'

type Teardown = { teardown: (fn: () => unknown) => void }
type Outcome = { conn: Conn, error?: undefined } | { conn?: undefined, error: HandshakeError }

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

interface Harness {
  port: number
  /** Resolves with the result of the next upgrade the server ran. */
  nextOutcome: () => Promise<Outcome>
}

/**
 * Starts an HTTP server on 127.0.0.1 that hands every upgrade (and, with `viaRequest`, every plain
 * request) to one Upgrader, and records each result.
 */
async function startServer (t: Teardown, options: UpgraderOptions = {}, extra: {
  responseHeaders?: Record<string, string | string[]>
  viaRequest?: boolean
} = {}): Promise<Harness> {
  const upgrader = new Upgrader(options)
  const outcomes: Outcome[] = []
  const waiters: Array<(o: Outcome) => void> = []
  const conns: Conn[] = []
  const record = (o: Outcome): void => {
    if (o.conn !== undefined) conns.push(o.conn)
    const waiter = waiters.shift()
    if (waiter !== undefined) waiter(o)
    else outcomes.push(o)
  }
  const run = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    upgrader.upgrade(req, socket, head, extra.responseHeaders).then(
      (conn) => record({ conn }),
      (error: HandshakeError) => record({ error })
    )
  }
  const server: Server = createServer({ requireHostHeader: false })
  server.on('upgrade', run)
  if (extra.viaRequest === true) server.on('request', (req: IncomingMessage) => run(req, req.socket, Buffer.alloc(0)))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const c of conns) c.terminate()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return {
    port: (server.address() as AddressInfo).port,
    nextOutcome: () => new Promise((resolve) => {
      const o = outcomes.shift()
      if (o !== undefined) resolve(o)
      else waiters.push(resolve)
    })
  }
}

interface RawResponse {
  statusLine: string
  /** Lower-cased header names, every value in order. */
  headers: Record<string, string[]>
  headerLines: string[]
  body: string
  /** Whether the server closed the connection (we saw 'end' or 'close'). */
  closed: boolean
}

function parseResponse (text: string, closed: boolean): RawResponse {
  const split = text.indexOf('\r\n\r\n')
  const head = split === -1 ? text : text.slice(0, split)
  const [statusLine, ...headerLines] = head.split('\r\n')
  const headers: Record<string, string[]> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).toLowerCase()
    ;(headers[name] ??= []).push(line.slice(colon + 1).trim())
  }
  return { statusLine, headers, headerLines, body: split === -1 ? '' : text.slice(split + 4), closed }
}

function connectRaw (t: Teardown, port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Sends `request` and reads until the server closes the connection. */
async function refusedRequest (t: Teardown, port: number, request: string): Promise<RawResponse> {
  const socket = await connectRaw(t, port)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  const ended = new Promise<void>((resolve) => {
    socket.once('end', resolve)
    socket.once('close', resolve)
    socket.on('error', () => resolve())
  })
  socket.write(request)
  await ended
  socket.end()
  return parseResponse(Buffer.concat(chunks).toString('utf8'), true)
}

/** Sends `request` and reads the response head of a successful upgrade (the socket stays open). */
async function acceptedRequest (t: Teardown, port: number, request: string): Promise<RawResponse & { socket: Socket }> {
  const socket = await connectRaw(t, port)
  let text = ''
  const head = new Promise<string>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1')
      if (text.includes('\r\n\r\n')) resolve(text)
    })
    socket.once('end', () => reject(new Error(`closed before a response head: ${JSON.stringify(text)}`)))
  })
  socket.write(request)
  return { ...parseResponse(await head, false), socket }
}

function request (headers: Record<string, string | undefined> = {}, method = 'GET', path = '/'): string {
  const all: Record<string, string | undefined> = {
    Host: 'localhost',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': KEY,
    'Sec-WebSocket-Version': '13',
    ...headers
  }
  let text = `${method} ${path} HTTP/1.1\r\n`
  for (const [name, value] of Object.entries(all)) if (value !== undefined) text += `${name}: ${value}\r\n`
  return text + '\r\n'
}

async function expectRefusal (t: Teardown & Tap, h: Harness, req: string, status: number, statusText: string): Promise<{ res: RawResponse, error: HandshakeError }> {
  const res = await refusedRequest(t, h.port, req)
  t.equal(res.statusLine, `HTTP/1.1 ${status} ${statusText}`)
  t.ok(res.closed, 'server closed the connection')
  t.same(res.headers.connection, ['close'])
  t.equal(res.headers['content-length']?.[0], String(Buffer.byteLength(res.body)))
  const outcome = await h.nextOutcome()
  t.ok(outcome.error instanceof HandshakeError, 'upgrade rejected with HandshakeError')
  t.equal(outcome.error?.status, status)
  return { res, error: outcome.error as HandshakeError }
}

type Tap = { equal: (...a: any[]) => void, ok: (...a: any[]) => void, same: (...a: any[]) => void }

t.test('refusals: status, headers, closed socket', async (t) => {
  const h = await startServer(t, {}, { viaRequest: true })

  t.test('405 for a method other than GET, with Allow', async (t) => {
    const { res, error } = await expectRefusal(t, h, request({}, 'POST'), 405, 'Method Not Allowed')
    t.same(res.headers.allow, ['GET'])
    t.same(error.headers, { Allow: 'GET' })
    t.match(res.body, /method must be GET/)
  })
  t.test('400 when Upgrade lacks websocket', async (t) => {
    await expectRefusal(t, h, request({ Upgrade: 'h2c' }), 400, 'Bad Request')
  })
  t.test('400 when Upgrade is missing', async (t) => {
    await expectRefusal(t, h, request({ Upgrade: undefined }), 400, 'Bad Request')
  })
  t.test('400 when Connection lacks upgrade', async (t) => {
    await expectRefusal(t, h, request({ Connection: 'keep-alive' }), 400, 'Bad Request')
  })
  t.test('400 when Host is missing', async (t) => {
    const { res } = await expectRefusal(t, h, request({ Host: undefined }), 400, 'Bad Request')
    t.match(res.body, /Host/)
  })
  t.test('400 when Sec-WebSocket-Key is missing', async (t) => {
    await expectRefusal(t, h, request({ 'Sec-WebSocket-Key': undefined }), 400, 'Bad Request')
  })
  t.test('400 when Sec-WebSocket-Key is not base64 of 16 bytes', async (t) => {
    await expectRefusal(t, h, request({ 'Sec-WebSocket-Key': 'c2hvcnQ=' }), 400, 'Bad Request')
    await expectRefusal(t, h, request({ 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25j!Q==' }), 400, 'Bad Request')
  })
  t.test('426 with Sec-WebSocket-Version: 13 for another version', async (t) => {
    const { res, error } = await expectRefusal(t, h, request({ 'Sec-WebSocket-Version': '8' }), 426, 'Upgrade Required')
    t.same(res.headers['sec-websocket-version'], ['13'])
    t.same(error.headers, { 'Sec-WebSocket-Version': '13' })
  })
  t.test('426 when the version is missing or not exactly 13', async (t) => {
    const { res } = await expectRefusal(t, h, request({ 'Sec-WebSocket-Version': undefined }), 426, 'Upgrade Required')
    t.same(res.headers['sec-websocket-version'], ['13'])
    await expectRefusal(t, h, request({ 'Sec-WebSocket-Version': '13, 8' }), 426, 'Upgrade Required')
  })
  t.test('method is checked first', async (t) => {
    await expectRefusal(t, h, request({ 'Sec-WebSocket-Version': '8', Upgrade: 'h2c' }, 'PUT'), 405, 'Method Not Allowed')
  })
})

t.test('101 response', async (t) => {
  // A number is accepted too, as from JavaScript callers that do not see the types.
  const h = await startServer(t, { headers: { 'X-Server': 'wsconn', 'X-Multi': ['1', '2'] } }, { responseHeaders: { 'X-Request': 'yes', 'X-Count': 5 as unknown as string } })
  const res = await acceptedRequest(t, h.port, request({ 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }))
  t.equal(res.statusLine, 'HTTP/1.1 101 Switching Protocols')
  t.same(res.headerLines.slice(0, 3), ['Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${ACCEPT}`], 'RFC 6455 example accept key')
  t.same(res.headers['x-server'], ['wsconn'])
  t.same(res.headers['x-multi'], ['1', '2'])
  t.same(res.headers['x-request'], ['yes'])
  t.same(res.headers['x-count'], ['5'])
  t.notOk('sec-websocket-extensions' in res.headers, 'extension offers are ignored')
  t.notOk('sec-websocket-protocol' in res.headers, 'no subprotocol when none offered')
  const outcome = await h.nextOutcome()
  t.ok(outcome.conn !== undefined)
  t.equal(outcome.conn?.subprotocol, '')
  t.equal(outcome.conn?.isServer, true)
})

t.test('header injection through a custom header value is neutralised', async (t) => {
  const h = await startServer(t, { headers: { 'X-Evil': 'a\r\nSet-Cookie: a=1' } }, { responseHeaders: { 'X-Evil2': 'b\u010d\u010aSet-Cookie: b=2\nX: y' } })
  const res = await acceptedRequest(t, h.port, request())
  t.equal(res.statusLine, 'HTTP/1.1 101 Switching Protocols')
  t.notOk('set-cookie' in res.headers, 'no injected header')
  t.notOk('x' in res.headers, 'no injected header')
  t.same(res.headers['x-evil'], ['a  Set-Cookie: a=1'])
  t.equal(res.headerLines.length, 5)
  t.ok((await h.nextOutcome()).conn)
})

t.test('reserved or invalid extra headers', async (t) => {
  t.throws(() => new Upgrader({ headers: { 'Sec-WebSocket-Accept': 'x' } }), TypeError)
  t.throws(() => new Upgrader({ headers: { upgrade: 'x' } }), TypeError)
  t.throws(() => new Upgrader({ headers: { 'Bad Name': 'x' } }), TypeError)
  t.throws(() => new Upgrader({ headers: { 'X-Object': {} as unknown as string } }), { name: 'TypeError', message: /X-Object must be a string/ })
  t.throws(() => new Upgrader({ headers: { 'X-List': ['a', null as unknown as string] } }), { name: 'TypeError', message: /X-List/ })
  const h = await startServer(t, {}, { responseHeaders: { 'Sec-WebSocket-Extensions': 'x' } })
  const { error } = await expectRefusal(t, h, request(), 500, 'Internal Server Error')
  t.match(error.message, /Sec-WebSocket-Extensions/)
})

t.test('options are validated early', async (t) => {
  t.throws(() => new Upgrader({ handshakeTimeout: -1 }), RangeError)
  t.throws(() => new Upgrader({ handshakeTimeout: 1.5 }), RangeError)
  t.throws(() => new Upgrader({ readLimit: -1 }), RangeError)
  t.throws(() => new Upgrader({ writeBufferSize: 0 }), RangeError)
  t.throws(() => new Upgrader({ subprotocols: ['a b'] }), TypeError)
  t.throws(() => new Upgrader({ checkOrigin: 'yes' as unknown as () => boolean }), TypeError)
  t.doesNotThrow(() => new Upgrader({ handshakeTimeout: 0 }))
})

t.test('default checkOrigin', async (t) => {
  const h = await startServer(t)
  const res = await acceptedRequest(t, h.port, request({ Host: 'example.com:8080', Origin: 'https://Example.com:8080' }))
  t.equal(res.statusLine, 'HTTP/1.1 101 Switching Protocols', 'same host accepted')
  t.ok((await h.nextOutcome()).conn)
  const noOrigin = await acceptedRequest(t, h.port, request())
  t.equal(noOrigin.statusLine, 'HTTP/1.1 101 Switching Protocols', 'no Origin accepted')
  t.ok((await h.nextOutcome()).conn)
  const { res: other, error } = await expectRefusal(t, h, request({ Host: 'example.com:8080', Origin: 'https://evil.com:8080' }), 403, 'Forbidden')
  t.match(other.body, /origin not allowed/)
  t.equal(error.message, 'websocket: request origin not allowed by checkOrigin (the default allows only the same origin): Origin "https://evil.com:8080", Host "example.com:8080"',
    'the rejection names the option and quotes Origin and Host')
  const port80 = await acceptedRequest(t, h.port, request({ Host: 'localhost:80', Origin: 'http://localhost' }))
  t.equal(port80.statusLine, 'HTTP/1.1 101 Switching Protocols', 'a default port written in Host')
  t.ok((await h.nextOutcome()).conn)
  await expectRefusal(t, h, request({ Host: 'example.com', Origin: 'null' }), 403, 'Forbidden')
})

t.test('custom checkOrigin, sync and async', async (t) => {
  const seen: string[] = []
  const h = await startServer(t, {
    checkOrigin: (req) => {
      seen.push(String(req.headers.origin))
      if (req.headers.origin === 'sync-ok') return true
      if (req.headers.origin === 'throws') throw new Error('boom')
      return new Promise((resolve) => setTimeout(() => resolve(req.headers.origin === 'async-ok'), 10))
    }
  })
  t.equal((await acceptedRequest(t, h.port, request({ Origin: 'sync-ok' }))).statusLine, 'HTTP/1.1 101 Switching Protocols')
  t.ok((await h.nextOutcome()).conn)
  t.equal((await acceptedRequest(t, h.port, request({ Origin: 'async-ok' }))).statusLine, 'HTTP/1.1 101 Switching Protocols')
  t.ok((await h.nextOutcome()).conn)
  const { error: refused } = await expectRefusal(t, h, request({ Origin: 'async-no' }), 403, 'Forbidden')
  t.equal(refused.message, 'websocket: request origin not allowed by checkOrigin: Origin "async-no", Host "localhost"')
  const { error: noOrigin } = await expectRefusal(t, h, request(), 403, 'Forbidden')
  t.equal(noOrigin.message, 'websocket: request origin not allowed by checkOrigin: Origin (none), Host "localhost"')
  const { error } = await expectRefusal(t, h, request({ Origin: 'throws' }), 500, 'Internal Server Error')
  t.match((error.cause as Error).message, 'boom')
  t.same(seen, ['sync-ok', 'async-ok', 'async-no', 'undefined', 'throws'])
})

t.test('subprotocols: first of the client offer the server supports', async (t) => {
  const h = await startServer(t, { subprotocols: ['a', 'b', 'c'] })
  const res = await acceptedRequest(t, h.port, request({ 'Sec-WebSocket-Protocol': 'x, c, b' }))
  t.same(res.headers['sec-websocket-protocol'], ['c'], "client's order wins")
  t.equal((await h.nextOutcome()).conn?.subprotocol, 'c')
  const none = await acceptedRequest(t, h.port, request({ 'Sec-WebSocket-Protocol': 'x, y' }))
  t.equal(none.statusLine, 'HTTP/1.1 101 Switching Protocols', 'no match still upgrades')
  t.notOk('sec-websocket-protocol' in none.headers)
  t.equal((await h.nextOutcome()).conn?.subprotocol, '')
  const plain = await startServer(t)
  const unsupported = await acceptedRequest(t, plain.port, request({ 'Sec-WebSocket-Protocol': 'chat' }))
  t.equal(unsupported.statusLine, 'HTTP/1.1 101 Switching Protocols', 'a server without subprotocols ignores an offer')
  t.notOk('sec-websocket-protocol' in unsupported.headers)
  t.equal((await plain.nextOutcome()).conn?.subprotocol, '')
})

t.test('selectSubprotocol takes precedence', async (t) => {
  const calls: string[][] = []
  const h = await startServer(t, {
    subprotocols: ['a'],
    selectSubprotocol: async (offered, req) => {
      calls.push(offered)
      if (req.url === '/none') return undefined
      if (req.url === '/bad') return 'not-offered'
      if (req.url === '/throw') throw new Error('nope')
      return offered[offered.length - 1]
    }
  })
  const res = await acceptedRequest(t, h.port, request({ 'Sec-WebSocket-Protocol': 'a, b' }))
  t.same(res.headers['sec-websocket-protocol'], ['b'])
  t.equal((await h.nextOutcome()).conn?.subprotocol, 'b')
  const none = await acceptedRequest(t, h.port, request({ 'Sec-WebSocket-Protocol': 'a, b' }, 'GET', '/none'))
  t.notOk('sec-websocket-protocol' in none.headers)
  t.equal((await h.nextOutcome()).conn?.subprotocol, '')
  const { error } = await expectRefusal(t, h, request({ 'Sec-WebSocket-Protocol': 'a' }, 'GET', '/bad'), 500, 'Internal Server Error')
  t.match(error.message, /did not offer/)
  await expectRefusal(t, h, request({ 'Sec-WebSocket-Protocol': 'a' }, 'GET', '/throw'), 500, 'Internal Server Error')
  const plain = await acceptedRequest(t, h.port, request({}, 'GET', '/bad'))
  t.equal(plain.statusLine, 'HTTP/1.1 101 Switching Protocols', 'not called when nothing is offered')
  t.ok((await h.nextOutcome()).conn)
  t.same(calls, [['a', 'b'], ['a', 'b'], ['a'], ['a']])
})

t.test('custom onError responder', async (t) => {
  const infos: Array<{ status: number, reason: string, headers: Record<string, string> }> = []
  const h = await startServer(t, {
    onError: ({ socket, status, reason, headers }) => {
      infos.push({ status, reason, headers })
      socket.write(`HTTP/1.1 ${status} Custom\r\nContent-Length: 0\r\n\r\n`)
    }
  })
  const res = await refusedRequest(t, h.port, request({ 'Sec-WebSocket-Version': '7' }))
  t.equal(res.statusLine, 'HTTP/1.1 426 Custom')
  t.ok(res.closed, 'socket ended after onError returned')
  t.equal((await h.nextOutcome()).error?.status, 426)
  t.same(infos, [{ status: 426, reason: 'unsupported version: 13 is the only one supported', headers: { 'Sec-WebSocket-Version': '13' } }])
})

t.test('a throwing onError destroys the socket', async (t) => {
  const h = await startServer(t, { onError: () => { throw new Error('responder broke') } })
  const res = await refusedRequest(t, h.port, request({}, 'DELETE'))
  t.equal(res.statusLine, '')
  const { error } = await h.nextOutcome()
  t.equal(error?.status, 405)
  t.match((error?.cause as Error).message, 'responder broke')
})

t.test('handshake timeout destroys the socket and rejects with status 0', async (t) => {
  const h = await startServer(t, { handshakeTimeout: 50, checkOrigin: () => new Promise(() => {}) })
  const start = Date.now()
  const res = await refusedRequest(t, h.port, request())
  t.equal(res.statusLine, '', 'nothing written')
  const { error } = await h.nextOutcome()
  t.equal(error?.status, 0)
  t.ok(error?.cause instanceof TimeoutError)
  t.ok(Date.now() - start < 2000)
})

t.test('a client that goes away during an async check rejects quietly', async (t) => {
  let release!: () => void
  const started = (): Promise<void> => new Promise((resolve) => { release = resolve })
  const hooks: Array<[string, UpgraderOptions]> = [
    ['checkOrigin', { checkOrigin: () => started().then(() => true) }],
    ['selectSubprotocol', { selectSubprotocol: (offered) => started().then(() => offered[0]) }]
  ]
  for (const [name, options] of hooks) {
    const h = await startServer(t, options)
    const socket = await connectRaw(t, h.port)
    const pending = new Promise<void>((resolve) => { socket.once('close', () => resolve()) })
    socket.write(request({ 'Sec-WebSocket-Protocol': 'chat' }))
    await new Promise((resolve) => setTimeout(resolve, 50))
    socket.destroy()
    const { error } = await h.nextOutcome()
    t.equal(error?.status, 0, `${name}: status 0`)
    t.match(error?.message, /closed during handshake/, `${name}: closed during handshake`)
    release() // resolving late must not write on the dead socket or throw
    await pending
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
})

t.test('a connection reset during an async check rejects with the socket error as cause', async (t) => {
  const h = await startServer(t, { checkOrigin: () => new Promise(() => {}) })
  const socket = await connectRaw(t, h.port)
  socket.write(request())
  await new Promise((resolve) => setTimeout(resolve, 50))
  socket.resetAndDestroy()
  const { error } = await h.nextOutcome()
  t.equal(error?.status, 0)
  t.match(error?.message, /socket error during handshake|closed during handshake/)
})

t.test('a socket destroyed before upgrade is called rejects at once', async (t) => {
  const upgrader = new Upgrader()
  const socket = connect(1, '127.0.0.1')
  socket.on('error', () => {})
  socket.destroy()
  const req = { method: 'GET', headers: {} } as unknown as IncomingMessage
  await t.rejects(upgrader.upgrade(req, socket, Buffer.alloc(0)), { name: 'HandshakeError', status: 0 })
})

t.test('clients that send FIN before upgrade() is called are refused and their sockets destroyed', async (t) => {
  const upgrader = new Upgrader()
  const outcomes: Outcome[] = []
  const server = createServer()
  const serverSockets = trackServerSockets(server)
  server.on('upgrade', async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.url === '/fin') {
      // Nothing follows the request, so Node reports the FIN without anyone reading.
      if (!socket.readableEnded) await new Promise((resolve) => socket.once('end', resolve))
    } else {
      // A frame follows the request: the FIN behind it is seen only once someone reads.
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    upgrader.upgrade(req, socket, head).then((conn) => outcomes.push({ conn }), (error: HandshakeError) => outcomes.push({ error }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const o of outcomes) o.conn?.terminate()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  const frame = clientFrame({ opcode: 1, payload: 'hello' })
  const clients = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const socket = await rawClient(port)
    socket.write(i % 2 === 0 ? upgradeRequest(port, '/fin') : Buffer.concat([Buffer.from(upgradeRequest(port, '/frame')), frame]))
    socket.end()
    return socket
  }))
  t.ok(await eventually(() => outcomes.length === 50), 'every upgrade settled')
  t.same(outcomes.filter((o) => o.conn !== undefined).length, 0, 'no connection was made')
  t.ok(outcomes.every((o) => o.error?.status === 0), 'each was refused with status 0')
  t.ok(await eventually(() => serverSockets.size === 0 && clients.every((c) => c.closed)), 'every server socket was destroyed')
})

t.test('concurrent upgrades on one Upgrader', async (t) => {
  const h = await startServer(t, {
    subprotocols: ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'],
    checkOrigin: () => new Promise((resolve) => setTimeout(() => resolve(true), Math.random() * 30))
  })
  const results = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const res = await acceptedRequest(t, h.port, request({ 'Sec-WebSocket-Protocol': `p${i}` }))
    return res.headers['sec-websocket-protocol']?.[0]
  }))
  t.same(results, ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'])
  const subprotocols = []
  for (let i = 0; i < 8; i++) subprotocols.push((await h.nextOutcome()).conn?.subprotocol)
  t.same(subprotocols.sort(), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'])
})

t.test('bytes sent right after the request (head) reach the Conn', async (t) => {
  const h = await startServer(t)
  const socket = await connectRaw(t, h.port)
  // A masked text frame "hi" in the same packet as the request.
  const mask = [1, 2, 3, 4]
  const frame = Buffer.from([0x81, 0x82, ...mask, 'h'.charCodeAt(0) ^ 1, 'i'.charCodeAt(0) ^ 2])
  socket.write(Buffer.concat([Buffer.from(request()), frame]))
  const { conn } = await h.nextOutcome()
  const msg = await conn!.readMessage()
  t.equal(msg.type, 1)
  t.equal(msg.data.toString(), 'hi')
})

t.test('bytes that arrive while an async check runs are kept for the Conn', async (t) => {
  let release!: (v: boolean) => void
  const h = await startServer(t, { checkOrigin: () => new Promise((resolve) => { release = resolve }) })
  const socket = await connectRaw(t, h.port)
  socket.write(request())
  await new Promise((resolve) => setTimeout(resolve, 30))
  socket.write(Buffer.from([0x82, 0x81, 0, 0, 0, 0, 0x2a])) // masked binary frame [42], zero mask
  await new Promise((resolve) => setTimeout(resolve, 30))
  release(true)
  const { conn } = await h.nextOutcome()
  const msg = await conn!.readMessage()
  t.same({ type: msg.type, data: [...msg.data] }, { type: 2, data: [42] })
})

t.test('too many bytes before the 101 fail the handshake', async (t) => {
  const h = await startServer(t, { readBufferSize: 16, checkOrigin: () => new Promise(() => {}) })
  const socket = await connectRaw(t, h.port)
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.on('error', () => {})
  socket.write(request())
  await new Promise((resolve) => setTimeout(resolve, 30))
  socket.write(Buffer.alloc(100))
  const { error } = await h.nextOutcome()
  t.equal(error?.status, 0)
  t.match(error?.message, /too much data/)
  await closed
})

t.test('the ws package as a client', async (t) => {
  const h = await startServer(t, { subprotocols: ['chat'] })
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/path?x=1`, ['superchat', 'chat'])
  t.teardown(() => ws.terminate())
  const received = new Promise<string>((resolve) => ws.once('message', (data) => resolve(data.toString())))
  const closed = new Promise<[number, string]>((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  t.equal(ws.protocol, 'chat')
  t.equal(ws.extensions, '', 'permessage-deflate offer declined')
  const { conn } = await h.nextOutcome()
  t.equal(conn!.subprotocol, 'chat')
  await conn!.writeMessage(1, 'hello from server')
  t.equal(await received, 'hello from server')
  ws.send('hello from client')
  const msg = await conn!.readMessage()
  t.same({ type: msg.type, data: msg.data.toString() }, { type: 1, data: 'hello from client' })
  await conn!.close(1000, 'bye')
  t.same(await closed, [1000, 'bye'])
})
