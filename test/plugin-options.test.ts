import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { SimpleBufferPool } from '../lib/buffer-pool.js'
import type { Conn } from '../lib/conn/conn.js'
import { dial } from '../lib/dialer.js'
import { DEFAULT_CLOSE_GRACE_PERIOD, DEFAULT_PLUGIN_READ_LIMIT, fastifyWsconn, type WsconnPluginOptions } from '../lib/plugin/index.js'
import { LEVEL, closeOf, collectLogs, listen, openWs, rawRequest, refusal, upgradeHeaders } from './helpers/plugin.js'

type Teardown = { teardown: (fn: () => unknown) => void }

async function build (t: Teardown, options: WsconnPluginOptions, setup: (app: FastifyInstance) => void, fastifyOptions = {}): Promise<number> {
  const app = Fastify(fastifyOptions)
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, options)
  setup(app)
  return await listen(app)
}

/** A route handler that reports what reading one message gave: its size or the close code. */
function sizeReporter (conn: Conn): Promise<void> {
  return conn.readMessage().then(
    (message) => conn.close(1000, `got ${message.data.length}`),
    () => {}
  )
}

t.test('readLimit: 1 MiB by default, overridable by the plugin and per route', async (t) => {
  t.equal(DEFAULT_PLUGIN_READ_LIMIT, 1024 * 1024)
  t.equal(DEFAULT_CLOSE_GRACE_PERIOD, 5000, 'the documented shutdown grace period')
  const port = await build(t, {}, (app) => {
    app.get('/default', { websocket: true }, sizeReporter)
    app.get('/small', { websocket: { readLimit: 10 } }, sizeReporter)
  })
  const atLimit = await dial(`ws://127.0.0.1:${port}/default`)
  await atLimit.writeMessage(2, Buffer.alloc(DEFAULT_PLUGIN_READ_LIMIT))
  await t.rejects(atLimit.readMessage(), { code: 1000, text: `got ${DEFAULT_PLUGIN_READ_LIMIT}` })
  const overLimit = await dial(`ws://127.0.0.1:${port}/default`)
  await overLimit.writeMessage(2, Buffer.alloc(DEFAULT_PLUGIN_READ_LIMIT + 1))
  await t.rejects(overLimit.readMessage(), { code: 1009 })
  const small = await dial(`ws://127.0.0.1:${port}/small`)
  await small.writeMessage(1, 'eleven char')
  await t.rejects(small.readMessage(), { code: 1009 })

  const pluginPort = await build(t, { readLimit: 4 }, (app) => {
    app.get('/ws', { websocket: true }, sizeReporter)
  })
  const viaPlugin = await dial(`ws://127.0.0.1:${pluginPort}/ws`)
  await viaPlugin.writeMessage(1, 'fives')
  await t.rejects(viaPlugin.readMessage(), { code: 1009 })
})

t.test('buffer settings reach the connection', async (t) => {
  const pool = new SimpleBufferPool(512)
  const seen: Record<string, unknown> = {}
  const port = await build(t, { writeBufferSize: 512, writeBufferPool: pool, readBufferSize: 2048, closeTimeout: 1000 }, (app) => {
    app.get('/ws', { websocket: { readBufferSize: 4096, maxFragments: 2, validateUtf8: false } }, async (conn) => {
      Object.assign(seen, { writeBufferSize: conn.writeBufferSize, readBufferSize: conn.readBufferSize, readLimit: conn.readLimit })
      const writer = await conn.nextWriter(2)
      await writer.write(Buffer.alloc(1500))
      await writer.close()
      // Three fragments are more than maxFragments allows.
      await conn.readMessage().catch(() => {})
    })
  })
  // Client fragments of 2 bytes, so three writes make three frames.
  const conn = await dial(`ws://127.0.0.1:${port}/ws`, { writeBufferSize: 2 })
  t.equal((await conn.readMessage()).data.length, 1500)
  t.same(seen, { writeBufferSize: 512, readBufferSize: 4096, readLimit: DEFAULT_PLUGIN_READ_LIMIT })
  t.ok(pool.idleCount > 0, 'the writer took its buffer from the plugin pool and gave it back')
  const writer = await conn.nextWriter(1)
  for (let i = 0; i < 3; i++) await writer.write('ab')
  await writer.close()
  await t.rejects(conn.readMessage(), { code: 1009 })
})

t.test('checkOrigin: same origin by default, false, a list, or a function; per route', async (t) => {
  const port = await build(t, {}, (app) => {
    app.get('/default', { websocket: true }, (conn) => { conn.close(1000, 'ok') })
    app.get('/any', { websocket: { checkOrigin: false } }, (conn) => { conn.close(1000, 'ok') })
    app.get('/listed', { websocket: { checkOrigin: ['https://app.example.com', 'HTTP://Other.Example:80'] } }, (conn) => { conn.close(1000, 'ok') })
    app.get('/custom', { websocket: { checkOrigin: async (req) => req.headers['x-allowed'] === 'yes' } }, (conn) => { conn.close(1000, 'ok') })
  })
  const base = `ws://127.0.0.1:${port}`
  const evil = { origin: 'https://evil.example' }
  t.equal((await refusal(openWs(`${base}/default`, evil))).status, 403)
  t.same(await closeOf(await openWs(`${base}/default`, { origin: `http://127.0.0.1:${port}` })), { code: 1000, reason: 'ok' })
  t.same(await closeOf(await openWs(`${base}/default`)), { code: 1000, reason: 'ok' }, 'no Origin header: not a browser')
  t.same(await closeOf(await openWs(`${base}/any`, evil)), { code: 1000, reason: 'ok' })
  t.same(await closeOf(await openWs(`${base}/listed`, { origin: 'https://app.example.com' })), { code: 1000, reason: 'ok' })
  t.same(await closeOf(await openWs(`${base}/listed`, { origin: 'http://other.example' })), { code: 1000, reason: 'ok' }, 'origins compare normalised')
  t.same(await closeOf(await openWs(`${base}/listed`, { origin: `http://127.0.0.1:${port}` })), { code: 1000, reason: 'ok' }, 'same origin stays allowed')
  t.equal((await refusal(openWs(`${base}/listed`, evil))).status, 403)
  t.equal((await refusal(openWs(`${base}/listed`, { origin: 'not a url' }))).status, 403)
  const noOrigin = await rawRequest(port, '/listed', upgradeHeaders({ Origin: 'null' }))
  t.equal(noOrigin.status, 403, 'an opaque origin is not listed')
  t.equal((await refusal(openWs(`${base}/custom`, evil))).status, 403)
  t.same(await closeOf(await openWs(`${base}/custom`, { ...evil, headers: { 'X-Allowed': 'yes' } })), { code: 1000, reason: 'ok' })
})

t.test('the same-origin default fills in default ports; a refusal is logged with Origin, Host and the option', async (t) => {
  const logs = collectLogs()
  const port = await build(t, {}, (app) => {
    app.get('/ws', { websocket: true }, (conn) => { conn.close(1000, 'ok') })
  }, { logger: logs.logger })
  const url = `ws://127.0.0.1:${port}/ws`
  // A browser page at http://localhost behind a proxy that writes the port into Host.
  for (const [origin, host] of [['http://localhost', 'localhost:80'], ['https://localhost', 'localhost:443'], ['https://localhost', 'localhost']]) {
    t.same(await closeOf(await openWs(url, { origin, headers: { Host: host } })), { code: 1000, reason: 'ok' }, `${origin} with Host ${host}`)
  }
  const refused = await refusal(openWs(url, { origin: 'http://localhost', headers: { Host: 'localhost:443' } }))
  t.equal(refused.status, 403, 'another port is another origin')
  const entry = await logs.waitFor((e) => /handshake refused with 403/.test(e.msg))
  t.equal(entry.level, LEVEL.info)
  t.equal(entry.err?.message, 'websocket: request origin not allowed by checkOrigin (the default allows only the same origin): ' +
    'Origin "http://localhost", Host "localhost:443"', 'the log line names the option and quotes Origin and Host')
  t.equal(refused.body, `${entry.err?.message}\n`, 'the client reads the same reason')

  const listed = await build(t, { checkOrigin: ['https://app.example'] }, (app) => {
    app.get('/ws', { websocket: true }, (conn) => { conn.close(1000, 'ok') })
  }, { logger: logs.logger })
  const long = `https://${'x'.repeat(300)}.example`
  t.equal((await refusal(openWs(`ws://127.0.0.1:${listed}/ws`, { origin: long }))).status, 403)
  const listedEntry = await logs.waitFor((e) => /Origin "https:\/\/x+\.\.\."/.test(e.err?.message ?? ''))
  t.equal(listedEntry.err?.message, `websocket: request origin not allowed by checkOrigin: Origin "${long.slice(0, 200)}...", Host "127.0.0.1:${listed}"`,
    'a custom policy is named without the default\'s note, and a long Origin is cut')
})

t.test('a checkOrigin that throws is a server error: 500, logged at error level', async (t) => {
  const logs = collectLogs()
  const port = await build(t, { checkOrigin: () => { throw new Error('policy store down') } }, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  }, { logger: logs.logger })
  const response = await rawRequest(port, '/ws', upgradeHeaders())
  t.equal(response.status, 500)
  const entry = await logs.waitFor((e) => e.msg === 'websocket: handshake failed')
  t.equal(entry.level, LEVEL.error)
})

t.test('refusals by the handshake are logged at info level', async (t) => {
  const logs = collectLogs()
  const port = await build(t, {}, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  }, { logger: logs.logger })
  const response = await rawRequest(port, '/ws', upgradeHeaders({ 'Sec-WebSocket-Version': '8' }))
  t.equal(response.status, 426)
  t.equal(response.headers['sec-websocket-version'], '13')
  const entry = await logs.waitFor((e) => /handshake refused with 426/.test(e.msg))
  t.equal(entry.level, LEVEL.info)
})

t.test('subprotocols and selectSubprotocol, plugin-wide and per route', async (t) => {
  const port = await build(t, { subprotocols: ['chat.v1'] }, (app) => {
    const report = (conn: Conn): void => { conn.close(1000, `chose ${conn.subprotocol || 'none'}`) }
    app.get('/default', { websocket: true }, report)
    app.get('/override', { websocket: { subprotocols: ['chat.v2'] } }, report)
    app.get('/select', { websocket: { selectSubprotocol: (offered) => offered.at(-1) } }, report)
  })
  const base = `ws://127.0.0.1:${port}`
  t.same(await closeOf(await openWs(`${base}/default`, {}, ['chat.v2', 'chat.v1'])), { code: 1000, reason: 'chose chat.v1' })
  t.same(await closeOf(await openWs(`${base}/override`, {}, ['chat.v1', 'chat.v2'])), { code: 1000, reason: 'chose chat.v2' })
  // The ws client refuses a 101 without a subprotocol when it offered some, so our client is used.
  const none = await dial(`${base}/override`, { subprotocols: ['chat.v1'] })
  await t.rejects(none.readMessage(), { code: 1000, text: 'chose none' })
  t.same(await closeOf(await openWs(`${base}/select`, {}, ['a', 'b'])), { code: 1000, reason: 'chose b' })
})

t.test('headers are added to the 101', async (t) => {
  const port = await build(t, { headers: { 'X-Server': 'wsconn' } }, (app) => {
    app.get('/ws', { websocket: true }, (conn) => { conn.close() })
  })
  const conn = await dial(`ws://127.0.0.1:${port}/ws`)
  t.equal(conn.response?.headers['x-server'], 'wsconn')
  await conn.close()
})

t.test('handshakeTimeout bounds the handshake after the hooks', async (t) => {
  const logs = collectLogs()
  const port = await build(t, { handshakeTimeout: 50 }, (app) => {
    app.get('/ws', { websocket: { checkOrigin: () => new Promise<boolean>(() => {}) } }, () => {})
  }, { logger: logs.logger })
  const response = await rawRequest(port, '/ws', upgradeHeaders())
  t.equal(response.raw, '', 'the socket was destroyed without an answer')
  const entry = await logs.waitFor((e) => e.msg === 'websocket: connection lost during the handshake')
  t.equal(entry.level, LEVEL.debug)
})

t.test('compression: plugin default, route override, and off for one route', async (t) => {
  const port = await build(t, { compression: true }, (app) => {
    app.get('/ws', { websocket: { compression: { serverNoContextTakeover: true, threshold: 0 } } }, async (conn) => {
      const { data } = await conn.readMessage()
      await conn.writeMessage(1, data)
      await conn.close(1000, `extensions "${conn.extensions}"`)
    })
    app.get('/plain', { websocket: { compression: false } }, (conn) => { conn.close(1000, `extensions "${conn.extensions}"`) })
  })
  // The ws client offers permessage-deflate with client_max_window_bits by default.
  const ws = await openWs(`ws://127.0.0.1:${port}/ws`)
  t.equal(ws.extensions, 'permessage-deflate', 'ws agreed to compression')
  const echoed = new Promise<string>((resolve) => { ws.once('message', (data) => { resolve(String(data)) }) })
  ws.send('squeeze '.repeat(100))
  t.equal(await echoed, 'squeeze '.repeat(100))
  t.same(await closeOf(ws), { code: 1000, reason: 'extensions "permessage-deflate; server_no_context_takeover"' })
  const plain = await openWs(`ws://127.0.0.1:${port}/plain`)
  t.equal(plain.extensions, '', 'a route can turn compression off')
  t.same(await closeOf(plain), { code: 1000, reason: 'extensions ""' })
})

t.test('bad plugin options fail registration with an error naming the option', async (t) => {
  const cases: Array<[WsconnPluginOptions, RegExp]> = [
    [{ pingInterval: -1 }, /pingInterval must be an integer/],
    [{ pingInterval: 1.5 }, /pingInterval must be an integer/],
    [{ closeGracePeriod: 2 ** 31 }, /closeGracePeriod must be an integer/],
    [{ onInvalidMessage: 'ignore' as never }, /onInvalidMessage must be 'close' or 'reject'/],
    [{ errorHandler: 'log' as never }, /errorHandler must be a function/],
    [{ compression: 'gzip' as never }, /compression must be a boolean or an object/],
    [{ compression: null as never }, /compression must be a boolean or an object/],
    [{ compression: [] as never }, /compression must be a boolean or an object/],
    [{ checkOrigin: 'same' as never }, /checkOrigin must be a boolean, an array of origins or a function/],
    [{ checkOrigin: ['not a url'] }, /checkOrigin has an invalid origin "not a url"/],
    [{ checkOrigin: [42 as never] }, /checkOrigin has an invalid origin 42/],
    [{ checkOrigin: ['data:text/plain,x'] }, /checkOrigin has an invalid origin "data:text\/plain,x"/],
    [{ readLimit: -5 }, /readLimit must be an integer/],
    [{ subprotocols: ['bad token'] }, /subprotocols must be an array of tokens/],
    [{ pingIntervall: 5 } as never, /unknown plugin option "pingIntervall"$/],
    // @fastify/websocket's names get a hint naming ours.
    [{ options: { maxPayload: 1024 } } as never, /unknown plugin option "options" \(.*readLimit for maxPayload/],
    [{ maxPayload: 1024 } as never, /unknown plugin option "maxPayload" \(the largest message is readLimit here\)/],
    [{ perMessageDeflate: true } as never, /"perMessageDeflate" \(permessage-deflate is the compression option here\)/],
    [{ verifyClient: () => true } as never, /"verifyClient" \(use checkOrigin/],
    [{ handleProtocols: () => 'chat' } as never, /"handleProtocols" \(use subprotocols/]
  ]
  for (const [options, expected] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(fastifyWsconn, options) }, expected, JSON.stringify(options))
    await app.close()
  }
  const prefixed = Fastify()
  await prefixed.register(fastifyWsconn, { prefix: '/ignored', logLevel: 'info' } as never)
  t.ok(prefixed.websocketConnections, 'Fastify register options are accepted')
  await prefixed.close()
})
