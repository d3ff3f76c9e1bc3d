import t from 'tap'
import { execFileSync } from 'node:child_process'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { Conn } from '../lib/conn/conn.js'
import { DialAbortError, Dialer, dial, type DialOptions } from '../lib/dialer.js'
import { computeAcceptKey } from '../lib/handshake.js'
import { HandshakeError, TimeoutError } from '../lib/protocol/errors.js'
import { Upgrader } from '../lib/upgrader.js'
import { selfSignedCert } from './helpers/tls.js'

type Teardown = { teardown: (fn: () => unknown) => void }
type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void

/** Listens on port 0; at teardown runs `beforeClose` (to destroy sockets), then closes the server. */
async function listen (t: Teardown, server: Server | ReturnType<typeof createNetServer>, host = '127.0.0.1', beforeClose = (): void => {}): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => resolve())
  })
  t.teardown(() => new Promise<void>((resolve) => {
    beforeClose()
    server.close(() => resolve())
  }))
  return (server.address() as AddressInfo).port
}

/** An HTTP server whose upgrades are answered by `onUpgrade`, writing raw bytes. */
async function rawUpgradeServer (t: Teardown, onUpgrade: UpgradeHandler): Promise<number> {
  const server = createServer()
  const sockets = new Set<Duplex>()
  server.on('upgrade', (req, socket, head) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.resume() // read (and drop) what the client sends, so its FIN is seen
    onUpgrade(req, socket, head)
  })
  return await listen(t, server, '127.0.0.1', () => { for (const s of sockets) s.destroy() })
}

function response101 (req: IncomingMessage, extra = '', accept = computeAcceptKey(String(req.headers['sec-websocket-key']))): string {
  return 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n${extra}\r\n`
}

/** An HTTP server that upgrades with our Upgrader and hands each Conn to `onConn`. */
async function upgraderServer (t: Teardown, onConn: (conn: Conn, req: IncomingMessage) => void, host = '127.0.0.1'): Promise<number> {
  const upgrader = new Upgrader({ subprotocols: ['chat', 'json'], checkOrigin: () => true })
  const server = createServer()
  const conns: Conn[] = []
  server.on('upgrade', (req, socket, head) => {
    upgrader.upgrade(req, socket, head).then((conn) => { conns.push(conn); onConn(conn, req) }, () => {})
  })
  return await listen(t, server, host, () => { for (const c of conns) c.terminate() })
}

t.test('against the ws package as server: one message each way, then close', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => protocols.has('chat') ? 'chat' : false })
  await new Promise((resolve) => wss.once('listening', resolve))
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  const serverClosed = new Promise<[number, string]>((resolve) => {
    wss.on('connection', (ws) => {
      ws.send('hello from ws')
      ws.on('message', (data, isBinary) => { if (!isBinary) ws.send(`echo: ${data.toString()}`) })
      ws.on('close', (code, reason) => resolve([code, reason.toString()]))
    })
  })
  const { port } = wss.address() as AddressInfo
  const conn = await dial(`ws://127.0.0.1:${port}/x?y=1`, { subprotocols: ['superchat', 'chat'] })
  t.equal(conn.subprotocol, 'chat')
  t.equal(conn.isServer, false)
  t.equal(conn.response?.statusCode, 101)
  t.equal(conn.response?.headers.upgrade, 'websocket')
  const first = await conn.readMessage()
  t.same({ type: first.type, data: first.data.toString() }, { type: 1, data: 'hello from ws' })
  await conn.writeMessage(1, 'hi')
  t.equal((await conn.readMessage()).data.toString(), 'echo: hi')
  await conn.close(1000, 'done')
  t.same(await serverClosed, [1000, 'done'])
})

t.test('against the ws package as server: permessage-deflate in both directions', async (t) => {
  let offer: string | undefined
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true })
  await new Promise((resolve) => wss.once('listening', resolve))
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  wss.on('connection', (ws, req) => {
    offer = req.headers['sec-websocket-extensions']
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  const { port } = wss.address() as AddressInfo
  const conn = await dial(`ws://127.0.0.1:${port}/`, { compression: true })
  t.teardown(() => conn.terminate())
  t.match(offer, /^permessage-deflate/, 'compression was offered')
  t.match(conn.extensions, /^permessage-deflate/, 'and agreed')
  const socket = conn.socket as Socket
  const text = 'a highly repetitive message '.repeat(100)
  const [written, read] = [socket.bytesWritten, socket.bytesRead]
  await conn.writeMessage(1, text)
  t.equal((await conn.readMessage()).data.toString(), text, 'ws inflated ours, we inflated its echo')
  t.ok(socket.bytesWritten - written < text.length / 4, 'our frame was compressed')
  t.ok(socket.bytesRead - read < text.length / 4, 'its frame was compressed')
})

t.test('against our Upgrader: request line, headers, origin, defaults merging', async (t) => {
  let seen: IncomingMessage | undefined
  const port = await upgraderServer(t, (conn, req) => {
    seen = req
    conn.writeMessage(2, Buffer.from([1, 2, 3])).catch(() => {})
  })
  const dialer = new Dialer({ headers: { 'X-Default': 'd', 'X-Both': 'default' }, origin: 'http://example.test' })
  const conn = await dialer.dial(new URL(`ws://127.0.0.1:${port}/some/path?q=1#frag`), {
    headers: { 'x-both': 'call', 'Sec-WebSocket-Protocol': 'json' }
  })
  t.teardown(() => conn.terminate())
  const msg = await conn.readMessage()
  t.same({ type: msg.type, data: [...msg.data] }, { type: 2, data: [1, 2, 3] })
  t.equal(conn.subprotocol, 'json', 'Sec-WebSocket-Protocol allowed as a header without subprotocols')
  const h = seen!.headers
  t.equal(seen!.url, '/some/path?q=1', 'path and query sent, fragment dropped')
  t.equal(h.host, `127.0.0.1:${port}`)
  t.equal(h['x-default'], 'd')
  t.equal(h['x-both'], 'call', 'per-dial header replaces the default case-insensitively')
  t.equal(h.origin, 'http://example.test')
  t.equal(h['sec-websocket-version'], '13')
  t.equal(Buffer.from(String(h['sec-websocket-key']), 'base64').length, 16)
  t.notOk('sec-websocket-extensions' in h)
})

t.test('Host header may be overridden; origin option wins over an Origin header', async (t) => {
  let seen: IncomingMessage | undefined
  const port = await upgraderServer(t, (_conn, req) => { seen = req })
  const conn = await dial(`ws://127.0.0.1:${port}`, { headers: { Host: 'virtual.test', Origin: 'http://a' }, origin: 'http://b' })
  t.teardown(() => conn.terminate())
  t.equal(seen!.headers.host, 'virtual.test')
  t.equal(seen!.headers.origin, 'http://b')
  t.equal(seen!.url, '/')
})

t.test('IPv6 literal host', async (t) => {
  let port: number
  try {
    port = await upgraderServer(t, (conn) => { conn.writeMessage(1, 'v6').catch(() => {}) }, '::1')
  } catch (err) {
    t.pass('IPv6 literal host', { skip: `IPv6 loopback not available: ${(err as Error).message}` })
    return
  }
  const conn = await dial(`ws://[::1]:${port}/`)
  t.teardown(() => conn.terminate())
  t.equal((await conn.readMessage()).data.toString(), 'v6')
})

t.test('a refusal carries status, headers and at most 1 KiB of body', async (t) => {
  const port = await rawUpgradeServer(t, (req, socket) => {
    const body = req.url === '/big' ? 'x'.repeat(5000) : 'who are you?'
    const statusLine = req.url === '/bare' ? 'HTTP/1.1 403' : 'HTTP/1.1 401 Unauthorized'
    socket.end(`${statusLine}\r\nWWW-Authenticate: Basic realm="ws"\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  })
  const err = await dial(`ws://127.0.0.1:${port}/`).catch((e: unknown) => e) as HandshakeError
  t.ok(err instanceof HandshakeError)
  t.equal(err.status, 401)
  t.equal(err.headers['www-authenticate'], 'Basic realm="ws"')
  t.equal(err.body.toString(), 'who are you?')
  t.match(err.message, /401/)
  const big = await dial(`ws://127.0.0.1:${port}/big`).catch((e: unknown) => e) as HandshakeError
  t.equal(big.status, 401)
  t.equal(big.body.length, 1024)
  const bare = await dial(`ws://127.0.0.1:${port}/bare`).catch((e: unknown) => e) as HandshakeError
  t.equal(bare.message, 'websocket: bad handshake: the server answered 403', 'no reason phrase, no trailing space')
})

t.test('invalid 101 responses are rejected with status 101', async (t) => {
  const cases: Array<[string, (req: IncomingMessage) => string, RegExp, DialOptions?]> = [
    ['bad accept', (req) => response101(req, '', computeAcceptKey('something else')), /Accept/],
    ['missing accept', () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', /Accept/],
    ['wrong Upgrade', (req) => response101(req).replace('Upgrade: websocket', 'Upgrade: h2c'), /Upgrade/],
    ['no upgrade headers at all', () => 'HTTP/1.1 101 Switching Protocols\r\n\r\n', /not a WebSocket upgrade/],
    ['Connection without upgrade', (req) => response101(req).replace('Connection: Upgrade', 'Connection: keep-alive'), /not a WebSocket upgrade/],
    ['unrequested subprotocol', (req) => response101(req, 'Sec-WebSocket-Protocol: chat\r\n'), /none was offered/],
    ['subprotocol not offered', (req) => response101(req, 'Sec-WebSocket-Protocol: other\r\n'), /not offered/, { subprotocols: ['chat'] }],
    ['two subprotocols', (req) => response101(req, 'Sec-WebSocket-Protocol: chat, json\r\n'), /not offered/, { subprotocols: ['chat', 'json'] }],
    ['two subprotocol lines', (req) => response101(req, 'Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: json\r\n'), /not offered/, { subprotocols: ['chat', 'json'] }],
    ['unrequested extension', (req) => response101(req, 'Sec-WebSocket-Extensions: permessage-deflate\r\n'), /extensions/],
    ['extension other than the offered one', (req) => response101(req, 'Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n'),
      /bad permessage-deflate answer: .*x-webkit-deflate-frame/, { compression: true }],
    ['window larger than requested', (req) => response101(req, 'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15\r\n'),
      /bad permessage-deflate answer: server_max_window_bits=15/, { compression: { serverMaxWindowBits: 10 } }]
  ]
  for (const [name, respond, message, options] of cases) {
    const closed: Array<Promise<unknown>> = []
    const port = await rawUpgradeServer(t, (req, socket) => {
      closed.push(new Promise((resolve) => { socket.once('end', resolve); socket.once('close', resolve) }))
      socket.write(respond(req))
    })
    const err = await dial(`ws://127.0.0.1:${port}/`, options).catch((e: unknown) => e) as HandshakeError
    t.ok(err instanceof HandshakeError, `${name}: HandshakeError`)
    t.equal(err.status, 101, `${name}: status 101`)
    t.match(err.message, message, `${name}: message`)
    await closed[0]
    t.pass(`${name}: connection closed`)
  }
})

t.test('the server choosing an offered subprotocol is accepted', async (t) => {
  const port = await rawUpgradeServer(t, (req, socket) => {
    // Send a frame in the same write as the 101: it must reach the Conn as `head`.
    socket.write(Buffer.concat([Buffer.from(response101(req, 'Sec-WebSocket-Protocol: json\r\n')), Buffer.from([0x81, 0x02, 0x6f, 0x6b])]))
  })
  const conn = await dial(`ws://127.0.0.1:${port}/`, { subprotocols: ['chat', 'json'] })
  t.teardown(() => conn.terminate())
  t.equal(conn.subprotocol, 'json')
  t.equal((await conn.readMessage()).data.toString(), 'ok')
})

t.test('handshake timeout against a server that never answers', async (t) => {
  const serverSockets: Socket[] = []
  const server = createNetServer((s) => { serverSockets.push(s); s.on('error', () => {}); s.resume() })
  const port = await listen(t, server, '127.0.0.1', () => { for (const s of serverSockets) s.destroy() })
  const start = Date.now()
  const err = await dial(`ws://127.0.0.1:${port}/`, { handshakeTimeout: 100 }).catch((e: unknown) => e)
  t.ok(err instanceof TimeoutError, 'TimeoutError')
  t.equal((err as TimeoutError).timeout, true)
  t.ok(Date.now() - start >= 90 && Date.now() - start < 3000)
  await new Promise((resolve) => serverSockets[0].destroyed ? resolve(null) : serverSockets[0].once('close', resolve))
  t.pass('the client closed its socket')
})

t.test('AbortSignal aborts the handshake but not the Conn', async (t) => {
  const serverSockets: Socket[] = []
  const server = createNetServer((s) => { serverSockets.push(s); s.on('error', () => {}); s.resume() })
  const port = await listen(t, server, '127.0.0.1', () => { for (const s of serverSockets) s.destroy() })

  const controller = new AbortController()
  const pending = dial(`ws://127.0.0.1:${port}/`, { signal: controller.signal })
  setTimeout(() => controller.abort(new Error('user gave up')), 30)
  const err = await pending.catch((e: unknown) => e) as DialAbortError
  t.ok(err instanceof DialAbortError)
  t.equal(err.name, 'AbortError')
  t.equal((err.cause as Error).message, 'user gave up')

  const before = serverSockets.length
  const already = AbortSignal.abort()
  const err2 = await dial(`ws://127.0.0.1:${port}/`, { signal: already }).catch((e: unknown) => e) as DialAbortError
  t.ok(err2 instanceof DialAbortError, 'an aborted signal rejects at once')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(serverSockets.length, before, 'no connection was made')

  const echoPort = await upgraderServer(t, (conn) => {
    conn.readMessage().then((m) => conn.writeMessage(1, m.data)).catch(() => {})
  })
  const c2 = new AbortController()
  const conn = await dial(`ws://127.0.0.1:${echoPort}/`, { signal: c2.signal })
  t.teardown(() => conn.terminate())
  c2.abort()
  await conn.writeMessage(1, 'still here')
  t.equal((await conn.readMessage()).data.toString(), 'still here', 'abort after success has no effect')
})

t.test('URL checks', async (t) => {
  await t.rejects(dial('http://127.0.0.1:1/'), { name: 'TypeError', message: /scheme "http:"/ })
  await t.rejects(dial('https://127.0.0.1:1/'), { name: 'TypeError', message: /only ws: and wss:/ })
  await t.rejects(dial('ftp://127.0.0.1/'), TypeError)
  await t.rejects(dial('not a url'), { name: 'TypeError', message: /malformed/ })
  await t.rejects(dial('ws://user:pass@127.0.0.1:1/'), { name: 'TypeError', message: /user info/ })
  await t.rejects(dial('ws://user@127.0.0.1:1/'), TypeError)
})

t.test('headers the handshake owns are refused', async (t) => {
  for (const name of ['Upgrade', 'connection', 'Sec-WebSocket-Key', 'sec-websocket-version', 'Sec-WebSocket-Extensions']) {
    await t.rejects(dial('ws://127.0.0.1:1/', { headers: { [name]: 'x' } }), { name: 'TypeError', message: new RegExp(name) })
  }
  await t.rejects(dial('ws://127.0.0.1:1/', { headers: { 'Sec-WebSocket-Protocol': 'a' }, subprotocols: ['a'] }),
    { name: 'TypeError', message: /Sec-WebSocket-Protocol/ })
  await t.rejects(dial('ws://127.0.0.1:1/', { headers: { Upgrade: 'x', Connection: 'y' } }), { message: /Upgrade, Connection/ })
  await t.rejects(dial('ws://127.0.0.1:1/', { headers: { 'X-A': 'a\r\nX-B: b' } }), TypeError)
  await t.rejects(dial('ws://127.0.0.1:1/', { headers: { 'Bad Name': 'x', 'X(y)': 'z' } }), { name: 'TypeError', message: 'invalid header name(s): "Bad Name", "X(y)"' })
  await t.rejects(dial('ws://127.0.0.1:1/', { origin: 'http://a\nb' }), { name: 'TypeError', message: /origin/ })
  await t.rejects(dial('ws://127.0.0.1:1/', { signal: {} as AbortSignal }), { name: 'TypeError', message: /AbortSignal/ })
  t.throws(() => new Dialer({ headers: { Upgrade: 'x' } }), TypeError)
})

t.test('options are validated', async (t) => {
  t.throws(() => new Dialer({ handshakeTimeout: -1 }), RangeError)
  t.throws(() => new Dialer({ readLimit: -5 }), RangeError)
  t.throws(() => new Dialer({ subprotocols: ['a', 'a'] }), TypeError)
  t.throws(() => new Dialer({ subprotocols: ['a,b'] }), TypeError)
  await t.rejects(dial('ws://127.0.0.1:1/', { handshakeTimeout: Infinity }), RangeError)
})

t.test('network errors reject with the error', async (t) => {
  const server = createNetServer()
  const port = await listen(t, server)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await t.rejects(dial(`ws://127.0.0.1:${port}/`), { code: 'ECONNREFUSED' })
  const closing = await rawUpgradeServer(t, (_req, socket) => socket.destroy())
  await t.rejects(dial(`ws://127.0.0.1:${closing}/`), { code: 'ECONNRESET' })
})

t.test('createConnection: the handshake runs over the Duplex it returns', async (t) => {
  let seen: IncomingMessage | undefined
  const port = await upgraderServer(t, (conn, req) => {
    seen = req
    conn.writeMessage(1, 'over the given socket').catch(() => {})
  })
  const urls: string[] = []
  const sockets: Socket[] = []
  // The URL names a host that does not resolve: only createConnection decides where bytes go.
  const conn = await dial('ws://nowhere.invalid:81/given?x=1', {
    subprotocols: ['chat'],
    createConnection: (url) => {
      urls.push(url.href)
      const socket = connect(port, '127.0.0.1')
      sockets.push(socket)
      return socket
    }
  })
  t.teardown(() => conn.terminate())
  t.same(urls, ['ws://nowhere.invalid:81/given?x=1'], 'called once, with the URL')
  t.equal(conn.socket, sockets[0], 'the Conn runs over that socket')
  t.equal(conn.subprotocol, 'chat')
  t.equal(seen!.url, '/given?x=1')
  t.equal(seen!.headers.host, 'nowhere.invalid:81')
  t.equal((await conn.readMessage()).data.toString(), 'over the given socket')

  // wss:// too: the Duplex is used as it is (here plain TCP), `tls` is not.
  const secure = await dial(`wss://127.0.0.1:${port}/`, { tls: { ca: 'not a certificate' }, createConnection: () => connect(port, '127.0.0.1') })
  t.teardown(() => secure.terminate())
  t.equal((await secure.readMessage()).data.toString(), 'over the given socket')
})

t.test('createConnection: a throw rejects the dial; it must be a function', async (t) => {
  const failure = new Error('no route to the peer')
  await t.rejects(dial('ws://127.0.0.1:1/', { createConnection: () => { throw failure } }), failure)
  await t.rejects(dial('ws://127.0.0.1:1/', { createConnection: 'net.connect' as never }),
    { name: 'TypeError', message: 'websocket: option createConnection must be a function' })
  // A refusal over a given Duplex leaves no socket open either.
  const server = createServer((_req, res) => { res.writeHead(403).end('no') })
  const port = await listen(t, server)
  const socket = connect(port, '127.0.0.1')
  await t.rejects(dial('ws://127.0.0.1/', { createConnection: () => socket }), { name: 'HandshakeError', status: 403 })
  if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve))
  t.ok(socket.destroyed, 'the given socket is destroyed')
})

t.test('concurrent dials on one Dialer', async (t) => {
  const port = await upgraderServer(t, (conn, req) => { conn.writeMessage(1, String(req.url)).catch(() => {}) })
  const dialer = new Dialer({ subprotocols: ['chat'] })
  const conns = await Promise.all(Array.from({ length: 8 }, (_, i) => dialer.dial(`ws://127.0.0.1:${port}/${i}`)))
  t.teardown(() => { for (const c of conns) c.terminate() })
  const urls = await Promise.all(conns.map(async (c) => (await c.readMessage()).data.toString()))
  t.same(urls, ['/0', '/1', '/2', '/3', '/4', '/5', '/6', '/7'])
  t.ok(conns.every((c) => c.subprotocol === 'chat'))
})

/** Reports whether an openssl binary can be run. */
function haveOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// node:crypto can make key pairs but not X.509 certificates, so the certificate comes from openssl.
const opensslSkip = haveOpenssl() ? false : 'openssl not found: cannot create a self-signed certificate'
t.test('wss:// against an https server with a self-signed certificate', { skip: opensslSkip }, async (t) => {
  const pair = selfSignedCert()
  if (pair === undefined) throw new Error('openssl vanished')
  const server = createHttpsServer(pair)
  const upgrader = new Upgrader()
  const conns: Conn[] = []
  const serverNames: Array<string | false | null> = []
  server.on('upgrade', (req, socket, head) => {
    serverNames.push((socket as TLSSocket).servername)
    upgrader.upgrade(req, socket, head).then((conn) => {
      conns.push(conn)
      return conn.readMessage().then((m) => conn.writeMessage(1, `tls: ${m.data.toString()}`))
    }).catch(() => {})
  })
  const port = await listen(t, server as unknown as Server, '127.0.0.1', () => { for (const c of conns) c.terminate() })
  const conn = await dial(`wss://localhost:${port}/secure`, { tls: { ca: pair.cert } })
  t.teardown(() => conn.terminate())
  await conn.writeMessage(1, 'hello')
  t.equal((await conn.readMessage()).data.toString(), 'tls: hello')
  await t.rejects(dial(`wss://localhost:${port}/`), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'untrusted certificate refused')
  const insecure = await dial(`wss://127.0.0.1:${port}/`, { tls: { rejectUnauthorized: false } })
  insecure.terminate()
  t.pass('rejectUnauthorized: false is honoured')
  // The CA from the Dialer's defaults and the server name from the call both apply.
  const merged = await new Dialer({ tls: { ca: pair.cert } }).dial(`wss://127.0.0.1:${port}/`, { tls: { servername: 'localhost' } })
  merged.terminate()
  t.equal(serverNames.at(-1), 'localhost', 'tls options of defaults and call are merged')
})
