import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { dial } from '../lib/dialer.js'
import { HandshakeError } from '../lib/protocol/errors.js'
import defaultExport, { fastifyWsconn } from '../lib/plugin/index.js'
import { LEVEL, closeOf, collectLogs, listen, messageOf, openWs, rawRequest, refusal, upgradeHeaders } from './helpers/plugin.js'

type Teardown = { teardown: (fn: () => unknown) => void }

async function build (t: Teardown, setup: (app: FastifyInstance) => void | Promise<void>, options = {}): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify(options)
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  await setup(app)
  const port = await listen(app)
  return { app, port }
}

t.test('the plugin is the default export too, wrapped by fastify-plugin', async (t) => {
  t.equal(defaultExport, fastifyWsconn)
  t.equal((fastifyWsconn as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')], true)
  t.match((fastifyWsconn as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')], { name: 'fastify-wsconn', fastify: '5.x' })
})

t.test('hooks run in order before the 101 and the handler runs after it', async (t) => {
  const steps: string[] = []
  const { port } = await build(t, (app) => {
    for (const hook of ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const) {
      app.addHook(hook, async (request: FastifyRequest) => {
        // An async pause in every hook: nothing may be answered before they all finish.
        await new Promise((resolve) => setTimeout(resolve, 5))
        steps.push(`${hook}:${String(request.ws)}`)
      })
    }
    app.get('/echo', { websocket: true }, async (conn) => {
      steps.push('handler')
      for await (const message of conn) await conn.writeMessage(1, `echo ${message.data.toString()}`)
    })
    app.get('/plain', async (request) => ({ ws: request.ws }))
  })
  const ws = await openWs(`ws://127.0.0.1:${port}/echo`)
  t.same(steps.slice(0, 4), ['onRequest:true', 'preParsing:true', 'preValidation:true', 'preHandler:true'])
  const reply = messageOf(ws)
  ws.send('hello')
  t.equal(await reply, 'echo hello')
  t.equal(steps[4], 'handler')
  const closed = closeOf(ws)
  ws.close(1000)
  t.equal((await closed).code, 1000)

  const response = await fetch(`http://127.0.0.1:${port}/plain`)
  t.same(await response.json(), { ws: false }, 'request.ws is false for plain requests')
})

t.test('a plain GET (and HEAD) to a websocket-only route gets 426 with Upgrade: websocket', async (t) => {
  const { port } = await build(t, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  })
  const response = await fetch(`http://127.0.0.1:${port}/ws`)
  t.equal(response.status, 426)
  t.equal(response.headers.get('upgrade'), 'websocket')
  t.match(await response.json(), { statusCode: 426, code: 'FST_WS_UPGRADE_REQUIRED' })
  const head = await fetch(`http://127.0.0.1:${port}/ws`, { method: 'HEAD' })
  t.equal(head.status, 426)
})

t.test('an upgrade to an unknown path gets 404 on a closed socket', async (t) => {
  const { port } = await build(t, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  })
  const response = await rawRequest(port, '/missing', upgradeHeaders())
  t.equal(response.status, 404)
  t.equal(response.headers.connection, 'close')
  t.match(JSON.parse(response.body), { statusCode: 404 })
  t.notMatch(response.raw, /101 Switching/)
})

t.test('an upgrade to a non-websocket route gets 400, never a 101', async (t) => {
  let called = false
  const { port } = await build(t, (app) => {
    app.get('/http', async () => {
      called = true
      return 'plain'
    })
  })
  const response = await rawRequest(port, '/http', upgradeHeaders())
  t.equal(response.status, 400)
  t.match(JSON.parse(response.body), { code: 'FST_WS_NOT_WEBSOCKET_ROUTE' })
  t.notMatch(response.raw, /101 Switching/)
  t.equal(called, false, 'the HTTP handler did not run')
  const viaWs = await refusal(openWs(`ws://127.0.0.1:${port}/http`))
  t.equal(viaWs.status, 400)
})

t.test('a hook reply ends the handshake with exactly that response on a closed socket', async (t) => {
  let handlerCalls = 0
  const { port } = await build(t, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers.authorization !== 'Bearer good') {
        await reply.code(401).header('WWW-Authenticate', 'Bearer').send({ error: 'who are you?' })
      }
    })
    app.get('/private', {
      websocket: true,
      preHandler: async (request, reply) => {
        if (request.headers['x-role'] !== 'admin') await reply.code(403).type('text/plain').send('admins only')
      }
    }, (conn) => {
      handlerCalls++
      conn.close(1000, 'welcome')
    })
  })
  const unauthorized = await rawRequest(port, '/private', upgradeHeaders())
  t.equal(unauthorized.status, 401)
  t.equal(unauthorized.headers['www-authenticate'], 'Bearer')
  t.same(JSON.parse(unauthorized.body), { error: 'who are you?' })
  t.equal(unauthorized.headers['content-length'], String(Buffer.byteLength(unauthorized.body)), 'the body is complete')

  const forbidden = await rawRequest(port, '/private', upgradeHeaders({ Authorization: 'Bearer good' }))
  t.equal(forbidden.status, 403)
  t.equal(forbidden.body, 'admins only')

  const viaDial = await dial(`ws://127.0.0.1:${port}/private`).catch((err: unknown) => err)
  t.type(viaDial, HandshakeError)
  t.equal((viaDial as HandshakeError).status, 401)
  t.equal(handlerCalls, 0)

  const ws = await openWs(`ws://127.0.0.1:${port}/private`, { headers: { Authorization: 'Bearer good', 'X-Role': 'admin' } })
  t.same(await closeOf(ws), { code: 1000, reason: 'welcome' })
  t.equal(handlerCalls, 1)
})

t.test('params, querystring and headers are validated by the route schema before the 101', async (t) => {
  const seen: unknown[] = []
  const { port } = await build(t, (app) => {
    app.get('/rooms/:id', {
      websocket: true,
      schema: {
        params: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] },
        querystring: { type: 'object', properties: { nick: { type: 'string', minLength: 2 } }, required: ['nick'] },
        headers: { type: 'object', properties: { 'x-client': { type: 'string', enum: ['a', 'b'] } }, required: ['x-client'] }
      }
    }, (conn, request) => {
      seen.push({ params: request.params, query: request.query })
      conn.close()
    })
  })
  const badParam = await rawRequest(port, '/rooms/abc?nick=zed', upgradeHeaders({ 'X-Client': 'a' }))
  t.equal(badParam.status, 400)
  t.match(JSON.parse(badParam.body), { code: 'FST_ERR_VALIDATION', message: /params\/id/ })
  const badQuery = await rawRequest(port, '/rooms/1?nick=z', upgradeHeaders({ 'X-Client': 'a' }))
  t.equal(badQuery.status, 400)
  t.match(JSON.parse(badQuery.body), { message: /querystring\/nick/ })
  const badHeader = await rawRequest(port, '/rooms/1?nick=zed', upgradeHeaders({ 'X-Client': 'c' }))
  t.equal(badHeader.status, 400)
  t.match(JSON.parse(badHeader.body), { message: /headers\/x-client/ })
  t.same(seen, [])

  const ws = await openWs(`ws://127.0.0.1:${port}/rooms/7?nick=zed`, { headers: { 'X-Client': 'b' } })
  await closeOf(ws)
  t.same(seen, [{ params: { id: 7 }, query: { nick: 'zed' } }], 'coerced values reach the handler')
})

t.test('prefixes and encapsulated plugins', async (t) => {
  const childHook: string[] = []
  const { port } = await build(t, (app) => {
    app.register(async (child) => {
      child.addHook('onRequest', async (request) => { childHook.push(request.url) })
      child.get('/chat', { websocket: true }, (conn) => { conn.close(1000, 'v1 chat') })
      child.get('/', { websocket: true }, (conn) => { conn.close(1000, 'v1 root') })
    }, { prefix: '/v1' })
    app.get('/outside', { websocket: true }, (conn) => { conn.close(1000, 'outside') })
  })
  t.same(await closeOf(await openWs(`ws://127.0.0.1:${port}/v1/chat`)), { code: 1000, reason: 'v1 chat' })
  t.same(await closeOf(await openWs(`ws://127.0.0.1:${port}/v1`)), { code: 1000, reason: 'v1 root' })
  t.same(await closeOf(await openWs(`ws://127.0.0.1:${port}/v1/`)), { code: 1000, reason: 'v1 root' })
  t.same(await closeOf(await openWs(`ws://127.0.0.1:${port}/outside`)), { code: 1000, reason: 'outside' })
  t.same(childHook, ['/v1/chat', '/v1', '/v1/'], 'the child hook ran for its own routes only')
})

t.test('one URL serves plain HTTP with handler and upgrades with wsHandler', async (t) => {
  const { port } = await build(t, (app) => {
    app.route({
      method: 'GET',
      url: '/both',
      handler: async () => ({ kind: 'http' }),
      wsHandler: (conn) => { conn.close(1000, 'ws') }
    })
    app.get('/short', { wsHandler: (conn) => { conn.close(1000, 'short ws') } }, async () => 'short http')
  })
  t.same(await (await fetch(`http://127.0.0.1:${port}/both`)).json(), { kind: 'http' })
  t.same(await closeOf(await openWs(`ws://127.0.0.1:${port}/both`)), { code: 1000, reason: 'ws' })
  t.equal(await (await fetch(`http://127.0.0.1:${port}/short`)).text(), 'short http')
  t.same(await closeOf(await openWs(`ws://127.0.0.1:${port}/short`)), { code: 1000, reason: 'short ws' })
})

t.test('the full route() form with websocket: true', async (t) => {
  const { port } = await build(t, (app) => {
    app.route({
      method: 'GET',
      url: '/full',
      websocket: { subprotocols: ['v2'] },
      handler: async (conn) => {
        const message = await conn.readMessage()
        await conn.writeMessage(1, `${conn.subprotocol}:${message.data.toString()}`)
      }
    })
  })
  const conn = await dial(`ws://127.0.0.1:${port}/full`, { subprotocols: ['v1', 'v2'] })
  t.equal(conn.subprotocol, 'v2')
  await conn.writeMessage(1, 'hi')
  t.equal((await conn.readMessage()).data.toString(), 'v2:hi')
  await conn.close()
})

t.test('bad websocket route declarations throw at declaration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  const noop = (): void => {}
  t.throws(() => app.post('/a', { websocket: true } as never, noop as never), /must use the GET method/)
  t.throws(() => app.route({ method: ['GET', 'POST'], url: '/b', websocket: true, handler: noop } as never), /must use the GET method/)
  t.throws(() => app.get('/c', { websocket: false, wsHandler: noop }, noop), /wsHandler is given but websocket is false/)
  t.throws(() => app.get('/d', { wsHandler: 'nope' as never }, noop), /wsHandler must be a function/)
  t.throws(() => app.get('/e', { websocket: { readlimit: 5 } as never }, noop), /unknown route option "readlimit"/)
  t.throws(() => app.get('/f', { websocket: 'yes' as never }, noop as never), /must be true or an object/)
  t.throws(() => app.get('/g', { websocket: true, schema: { incoming: 'text' } }, noop), /schema.incoming must be a JSON schema object/)
  t.throws(() => app.get('/h', { websocket: true, schema: { outgoing: null } }, noop), /schema.outgoing must be a JSON schema object/)
  t.throws(() => app.get('/i', { websocket: { readLimit: -1 } }, noop), RangeError)
  // A websocket: false route is a plain route.
  app.get('/j', { websocket: false }, async () => 'plain')
  t.equal((await app.inject('/j')).body, 'plain')
})

t.test('a route declared before the plugin loaded refuses upgrades loudly', async (t) => {
  const logs = collectLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(() => app.close())
  // The trap: register and declare in the same tick, without awaiting the plugin.
  app.register(fastifyWsconn)
  app.get('/early', { websocket: true }, (() => {}) as never)
  app.register(async (child) => {
    child.get('/late', { websocket: true }, (conn) => { conn.close(1000, 'late works') })
  })
  const port = await listen(app)
  for (let i = 0; i < 2; i++) {
    const response = await rawRequest(port, '/early', upgradeHeaders())
    t.equal(response.status, 500)
    t.match(JSON.parse(response.body), { code: 'FST_WS_ROUTE_DECLARED_TOO_EARLY', message: /declared before fastify-wsconn was loaded/ })
  }
  const warnings = logs.entries.filter((e) => e.level === LEVEL.warn && /declared before fastify-wsconn/.test(e.msg))
  t.equal(warnings.length, 1, 'warned once per route')
  t.same(await closeOf(await openWs(`ws://127.0.0.1:${port}/late`)), { code: 1000, reason: 'late works' })
})

t.test('a plain request to a websocket route declared before the plugin loaded never reaches the websocket handler', async (t) => {
  const logs = collectLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(() => app.close())
  let websocketHandlerCalls = 0
  // Called with (request, reply) by mistake, it answers, so the mistake shows instead of a hang.
  const websocketHandler = ((_conn: unknown, second: { send?: (body: string) => void }) => {
    websocketHandlerCalls++
    second.send?.('the websocket handler ran')
  }) as never
  // Routes declared before the plugin loaded, on the root and in a plugin that loads first.
  app.get('/before', { websocket: true }, websocketHandler)
  app.register(async (child) => {
    child.get('/child', { websocket: true }, websocketHandler)
    // Plain routes declared early stay plain, and so does the HTTP handler of a route with a wsHandler.
    child.get('/plain', async () => 'plain')
    child.get('/both', { wsHandler: websocketHandler }, async () => 'http side')
  })
  await app.register(fastifyWsconn)
  const port = await listen(app)
  for (const [method, path] of [['GET', '/before'], ['HEAD', '/before'], ['GET', '/child']] as const) {
    const response = await app.inject({ method, url: path })
    t.equal(response.statusCode, 500, `${method} ${path}`)
    if (method === 'GET') {
      t.match(response.json(), { code: 'FST_WS_ROUTE_DECLARED_TOO_EARLY', message: /declared before fastify-wsconn was loaded.*after `await app.register\(fastifyWsconn\)`/ })
    }
  }
  const overTcp = await rawRequest(port, '/before', { Connection: 'close' })
  t.equal(overTcp.status, 500)
  t.equal((await app.inject('/plain')).body, 'plain')
  t.equal((await app.inject('/both')).body, 'http side')
  t.equal((await rawRequest(port, '/both', upgradeHeaders())).status, 500, 'its upgrades are refused as before')
  t.equal(websocketHandlerCalls, 0, 'no websocket handler ran')
  const warnings = logs.entries.filter((e) => e.level === LEVEL.warn && /declared before fastify-wsconn/.test(e.msg))
  t.same(warnings.map((e) => /route ([A-Z]+ \/\w+)/.exec(e.msg)?.[1]), ['GET /before', 'HEAD /before', 'GET /child', 'GET /both'], 'warned once per route')
})

t.test('a non-WebSocket upgrade is answered as plain HTTP', async (t) => {
  const { port } = await build(t, (app) => {
    app.get('/page', async () => 'plain page')
  })
  const response = await rawRequest(port, '/page', { Connection: 'Upgrade, HTTP2-Settings', Upgrade: 'h2c', 'HTTP2-Settings': 'AAMAAABkAAQCAAAAAAIAAAAA' })
  t.equal(response.status, 200)
  t.equal(response.body, 'plain page')
  t.equal(response.headers.connection, 'close')
})

t.test('a non-WebSocket upgrade is left to another upgrade listener', async (t) => {
  const { app, port } = await build(t, (app) => {
    app.get('/page', async () => 'plain page')
  })
  app.server.on('upgrade', (request, socket) => {
    if (request.headers.upgrade === 'custom') socket.end('HTTP/1.1 418 I\'m a teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
  })
  const response = await rawRequest(port, '/page', { Connection: 'Upgrade', Upgrade: 'custom' })
  t.equal(response.status, 418)
  t.equal(response.body, '')
})

t.test('a failure while routing an upgrade destroys the socket and is logged', async (t) => {
  const logs = collectLogs()
  const { port } = await build(t, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  }, {
    logger: logs.logger,
    rewriteUrl: (request: { url?: string }) => {
      if (request.url === '/boom') throw new Error('rewrite exploded')
      return request.url ?? '/'
    }
  })
  const response = await rawRequest(port, '/boom', upgradeHeaders())
  t.equal(response.raw, '', 'nothing was answered')
  const entry = await logs.waitFor((e) => e.msg === 'websocket: routing an upgrade request failed')
  t.equal(entry.level, LEVEL.warn)
  t.equal(entry.err?.message, 'rewrite exploded')
})

t.test('a socket error while hooks run is logged below error level', async (t) => {
  const logs = collectLogs()
  let reached = false
  const { port } = await build(t, (app) => {
    app.addHook('onRequest', async (request) => {
      const error = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
      request.raw.socket.destroy(error)
    })
    app.get('/ws', { websocket: true }, () => { reached = true })
  }, { logger: logs.logger })
  await rawRequest(port, '/ws', upgradeHeaders())
  const entry = await logs.waitFor((e) => e.msg === 'websocket: socket error before the handshake')
  t.equal(entry.level, LEVEL.debug)
  t.equal(entry.err?.code, 'ECONNRESET')
  t.notOk(logs.entries.some((e) => e.level >= LEVEL.error), 'nothing logged at error level')
  t.equal(reached, false)
})
