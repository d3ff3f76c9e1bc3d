import t from 'tap'
import type { Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Conn } from '../lib/conn/conn.js'
import { dial } from '../lib/dialer.js'
import { PongMessage } from '../lib/protocol/constants.js'
import { fastifyWsconn, type WsconnPluginOptions } from '../lib/plugin/index.js'
import { LEVEL, closeOf, collectLogs, listen, messageOf, openWs, rawRequest, upgradeHeaders, type LogEntry } from './helpers/plugin.js'
import { eventually, rawClient, trackServerSockets, upgradeRequest } from './helpers/raw-clients.js'
import { clientFrame } from './helpers/wire-client.js'

type Teardown = { teardown: (fn: () => unknown) => void }

async function build (t: Teardown, options: WsconnPluginOptions, setup: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, url: string, port: number, logs: LogEntry[], waitFor: ReturnType<typeof collectLogs>['waitFor'] }> {
  const logs = collectLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, options)
  setup(app)
  const port = await listen(app)
  return { app, url: `ws://127.0.0.1:${port}`, port, logs: logs.entries, waitFor: logs.waitFor }
}

function gate (): { wait: Promise<void>, open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => { open = resolve })
  return { wait, open }
}

t.test('a handler that throws or rejects: 1011, request.log.error, errorHandler; the server stays up', async (t) => {
  const calls: Array<{ message: string, isInstance: boolean, url: string, conn: boolean }> = []
  const { app, url, logs, waitFor } = await build(t, {
    errorHandler (error, conn, request) {
      calls.push({ message: error.message, isInstance: typeof this.websocketConnections === 'object', url: request.url, conn: typeof conn.close === 'function' })
    }
  }, (app) => {
    app.get('/sync', { websocket: true }, () => { throw new Error('sync boom') })
    app.get('/async', { websocket: true }, async (conn) => {
      await conn.readMessage()
      throw new Error('async boom')
    })
    app.get('/string', { websocket: true }, () => {
      // Some code throws non-errors; the plugin must still report something useful.
      // eslint-disable-next-line no-throw-literal
      throw 'a string'
    })
    app.get('/ok', { websocket: true }, (conn) => { conn.close(1000, 'still up') })
  })
  t.same(await closeOf(await openWs(`${url}/sync`)), { code: 1011, reason: 'internal error' })
  const ws = await openWs(`${url}/async`)
  ws.send('go')
  t.same(await closeOf(ws), { code: 1011, reason: 'internal error' })
  t.same(await closeOf(await openWs(`${url}/string`)), { code: 1011, reason: 'internal error' })
  t.same(await closeOf(await openWs(`${url}/ok`)), { code: 1000, reason: 'still up' })
  t.same(calls, [
    { message: 'sync boom', isInstance: true, url: '/sync', conn: true },
    { message: 'async boom', isInstance: true, url: '/async', conn: true },
    { message: 'non-error thrown: a string', isInstance: true, url: '/string', conn: true }
  ])
  await waitFor((e) => e.err?.message === 'non-error thrown: a string')
  const errors = logs.filter((e) => e.msg === 'websocket: handler failed')
  t.same(errors.map((e) => [e.level, e.err?.message]), [
    [LEVEL.error, 'sync boom'], [LEVEL.error, 'async boom'], [LEVEL.error, 'non-error thrown: a string']
  ])
  t.ok(errors.every((e) => typeof e.reqId === 'string'), 'logged with the request logger')
  await waitUntil(() => app.websocketConnections.size === 0)
  t.pass('every connection left the registry')
})

t.test('an errorHandler may close with its own code; one that throws is logged', async (t) => {
  const { url, waitFor } = await build(t, {
    errorHandler: () => { throw new Error('handler of handlers failed') }
  }, (app) => {
    app.get('/own', {
      websocket: { errorHandler: async (error, conn) => { await conn.close(4000, `sorry: ${error.message}`) } }
    }, () => { throw new Error('oops') })
    app.get('/plugin', { websocket: true }, () => { throw new Error('oops') })
    app.get('/none', { websocket: { errorHandler: undefined } }, () => { throw new Error('oops') })
  })
  t.same(await closeOf(await openWs(`${url}/own`)), { code: 4000, reason: 'sorry: oops' }, 'the route errorHandler wins')
  t.same(await closeOf(await openWs(`${url}/plugin`)), { code: 1011, reason: 'internal error' })
  const entry = await waitFor((e) => e.msg === 'websocket: errorHandler failed')
  t.equal(entry.level, LEVEL.error)
  t.equal(entry.err?.message, 'handler of handlers failed')
  t.same(await closeOf(await openWs(`${url}/none`)), { code: 1011, reason: 'internal error' })
})

t.test('errors that only report the end of the connection are not server errors', async (t) => {
  let errorHandlerCalls = 0
  const { url, logs, waitFor } = await build(t, { errorHandler: () => { errorHandlerCalls++ } }, (app) => {
    app.get('/read', { websocket: true }, async (conn) => {
      await conn.readMessage()
      await conn.readMessage()
    })
    app.get('/write-after-close', { websocket: true }, async (conn) => {
      await conn.close(1000)
      await conn.writeMessage(1, 'too late')
    })
    app.get('/write-while-closing', { websocket: true }, async (conn) => {
      conn.close(1000)
      await conn.writeMessage(1, 'too late')
    })
  })
  // The peer closes normally while the handler waits for a message.
  const normal = await dial(`${url}/read`)
  await normal.writeMessage(1, 'one')
  await normal.close(1000, 'bye')
  const ended = await waitFor((e) => e.msg === 'websocket: connection ended' && e.err?.type === 'CloseError')
  t.equal(ended.level, LEVEL.debug)

  // The peer resets the TCP connection: ECONNRESET.
  const reset = await dial(`${url}/read`)
  await reset.writeMessage(1, 'one')
  await new Promise((resolve) => setTimeout(resolve, 20))
  ;(reset.socket as Socket).resetAndDestroy()
  const lost = await waitFor((e) => e.msg === 'websocket: connection ended' && /ECONNRESET|unexpected EOF/.test(String(e.err?.message)))
  t.equal(lost.level, LEVEL.debug)

  // Writing after the connection closed, and while it closes.
  const late = await dial(`${url}/write-after-close`)
  await t.rejects(late.readMessage(), { code: 1000 })
  const writeClosed = await waitFor((e) => e.msg === 'websocket: connection ended' && e.err?.type === 'WriteClosedError')
  t.equal(writeClosed.level, LEVEL.debug)
  const closing = await dial(`${url}/write-while-closing`)
  await t.rejects(closing.readMessage(), { code: 1000 })
  const closeSent = await waitFor((e) => e.msg === 'websocket: connection ended' && e.err?.type === 'CloseSentError')
  t.equal(closeSent.level, LEVEL.debug)

  // The peer breaks the protocol: an unmasked frame from a client.
  const rude = await dial(`${url}/read`)
  rude.socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]))
  await t.rejects(rude.readMessage(), { code: 1002 })
  const broke = await waitFor((e) => e.msg === 'websocket: the client broke the protocol')
  t.equal(broke.level, LEVEL.info)

  t.equal(errorHandlerCalls, 0)
  t.notOk(logs.some((e) => e.level >= LEVEL.error), 'nothing at error level')
})

t.test('an open connection keeps neither its request nor its routing, unless the route has an errorHandler to give the request to', async (t) => {
  // A full collection on demand, without starting the test process with --expose-gc.
  setFlagsFromString('--expose-gc')
  const collect = runInNewContext('gc') as () => void
  const seen = new Map<string, { request: WeakRef<object>, raw: WeakRef<object>, reply: WeakRef<object> }>()
  const { url } = await build(t, {}, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      seen.set(request.url, { request: new WeakRef(request), raw: new WeakRef(request.raw), reply: new WeakRef(reply.raw) })
    })
    const echo = async (conn: Conn): Promise<void> => {
      for await (const message of conn) await conn.writeMessage(message.type, message.data)
    }
    app.get('/plain', { websocket: true }, echo)
    app.get('/handled', { websocket: { errorHandler: () => {} } }, echo)
  })
  const plain = await openWs(`${url}/plain`)
  const handled = await openWs(`${url}/handled`)
  for (const ws of [plain, handled]) {
    const echoed = messageOf(ws)
    ws.send('open')
    t.equal(await echoed, 'open', 'the handler runs')
  }
  // WeakRefs hold their targets until the job that made them ends.
  await new Promise((resolve) => setImmediate(resolve))
  collect()
  const plainRefs = seen.get('/plain')!
  t.equal(plainRefs.request.deref(), undefined, 'the Fastify request was collected while the handler runs')
  t.equal(plainRefs.raw.deref(), undefined, 'so was the raw request')
  t.equal(plainRefs.reply.deref(), undefined, 'and the stand-in response the upgrade was routed with')
  const handledRefs = seen.get('/handled')!
  t.not(handledRefs.request.deref(), undefined, 'a route with an errorHandler keeps the request for it')
  t.equal(handledRefs.reply.deref(), undefined, 'but not the stand-in response')
  plain.close()
  handled.close()
})

t.test('heartbeat: a peer that answers pings stays, one that does not is dropped', async (t) => {
  const pongs: string[] = []
  const { url, waitFor } = await build(t, {}, (app) => {
    app.get('/beat', { websocket: { pingInterval: 20 } }, async (conn) => {
      conn.setPongHandler(() => { pongs.push('seen by the application') })
      await conn.readMessage()
      conn.setPongHandler(null)
      await conn.writeMessage(1, 'still alive')
      await conn.readMessage()
    })
  })
  const alive = await dial(`${url}/beat`)
  let pings = 0
  const answered = new Promise<void>((resolve) => {
    alive.setPingHandler(async (data) => {
      pings++
      await alive.writeControl(PongMessage, data)
      if (pings === 4) resolve()
    })
  })
  const reading = alive.readMessage()
  await answered
  await alive.writeMessage(1, 'next')
  t.equal((await reading).data.toString(), 'still alive', 'several intervals passed and the connection lives')
  t.ok(pongs.length >= 1, 'the application pong handler still runs')

  const silent = await dial(`${url}/beat`)
  silent.setPingHandler(() => {})
  await t.rejects(silent.readMessage(), { code: 1006 }, 'dropped without a closing handshake')
  const entry = await waitFor((e) => /did not answer a ping/.test(e.msg))
  t.equal(entry.level, LEVEL.debug)
  await alive.close()
})

t.test('heartbeat: it keeps working while the handler has its own pong handler, which sees every pong', async (t) => {
  let applicationPongs = 0
  const { url } = await build(t, {}, (app) => {
    app.get('/own-pongs', { websocket: { pingInterval: 20 } }, async (conn) => {
      conn.setPongHandler(() => { applicationPongs++ })
      await conn.readMessage()
      await conn.writeMessage(1, `${applicationPongs} pongs seen`)
      await conn.readMessage()
    })
  })
  const peer = await dial(`${url}/own-pongs`)
  let pongsSent = 0
  const enough = new Promise<void>((resolve) => {
    peer.setPingHandler(async (data) => {
      await peer.writeControl(PongMessage, data)
      if (++pongsSent === 4) resolve()
    })
  })
  const reading = peer.readMessage()
  // Four pongs answer four pings: the heartbeat saw each one, or it would have dropped the peer.
  await enough
  await peer.writeMessage(1, 'report')
  const report = (await reading).data.toString()
  t.match(report, /^\d+ pongs seen$/)
  // The four pongs crossed the wire before 'report'.
  t.ok(Number.parseInt(report) >= 4, `the application's pong handler ran for every pong (${report})`)
  const silent = await dial(`${url}/own-pongs`)
  silent.setPingHandler(() => {})
  await t.rejects(silent.readMessage(), { code: 1006 }, 'a peer that answers no ping is still dropped')
  await peer.close()
})

t.test('heartbeat: pings that cannot be sent while closing do not break it; the silent peer is dropped', async (t) => {
  const { url, waitFor } = await build(t, {}, (app) => {
    app.get('/closing', { websocket: { pingInterval: 20, closeTimeout: 60_000 } }, (conn) => {
      conn.close(1000, 'bye')
    })
  })
  const peer = await dial(`${url}/closing`)
  // It answers neither the close frame nor pings: only the heartbeat can end the connection.
  peer.setCloseHandler(() => {})
  peer.setPingHandler(() => {})
  await t.rejects(peer.readMessage(), { code: 1000, text: 'bye' })
  await peer.closed
  const entry = await waitFor((e) => /did not answer a ping/.test(e.msg))
  t.equal(entry.level, LEVEL.debug)
})

t.test('websocketConnections lists live connections; a handler may return and leave it open', async (t) => {
  const { app, url } = await build(t, {}, (app) => {
    app.get('/join', { websocket: true }, () => {})
    app.post('/broadcast', async (request: FastifyRequest<{ Body: { text: string } }>) => {
      for (const conn of app.websocketConnections) await conn.writeMessage(1, request.body.text)
      return { sent: app.websocketConnections.size }
    })
  })
  const a = await dial(`${url}/join`)
  const b = await dial(`${url}/join`)
  t.equal(app.websocketConnections.size, 2)
  const response = await app.inject({ method: 'POST', url: '/broadcast', payload: { text: 'to all' } })
  t.same(response.json(), { sent: 2 })
  t.equal((await a.readMessage()).data.toString(), 'to all')
  t.equal((await b.readMessage()).data.toString(), 'to all')
  await a.close()
  await waitUntil(() => app.websocketConnections.size === 1)
  t.equal(app.websocketConnections.size, 1)
  await b.close()
})

t.test('app.close() sends 1001 to every connection and waits for the closing handshakes', async (t) => {
  const { app, url } = await build(t, {}, (app) => {
    app.get('/ws', { websocket: true }, () => {})
  })
  const clients = await Promise.all([openWs(`${url}/ws`), openWs(`${url}/ws`), openWs(`${url}/ws`)])
  const closes = clients.map(closeOf)
  t.equal(app.websocketConnections.size, 3)
  await app.close()
  for (const close of await Promise.all(closes)) t.same(close, { code: 1001, reason: 'server shutting down' })
  t.equal(app.websocketConnections.size, 0)
  t.equal(app.server.listenerCount('upgrade'), 0, 'the upgrade listener is removed')
})

t.test('shutdown: after the grace period peers that do not answer are destroyed; new upgrades get 503', async (t) => {
  const { app, url, port } = await build(t, { closeGracePeriod: 300 }, (app) => {
    app.get('/ws', { websocket: { closeTimeout: 60_000 } }, () => {})
  })
  const stubborn = await dial(`${url}/ws`)
  // It neither echoes the close frame nor ends TCP, so only the grace period can end it.
  let sawClose = false
  stubborn.setCloseHandler(() => { sawClose = true })
  const closing = app.close()
  await waitUntil(() => sawClose)
  const refused = await rawRequest(port, '/ws', upgradeHeaders())
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { statusCode: 503 })
  await closing
  await t.rejects(stubborn.readMessage(), { code: 1001 }, 'it received the 1001 first')
  await stubborn.closed
  t.equal(app.websocketConnections.size, 0)
})

t.test('an upgrade whose hooks or handshake finish during shutdown is not served', async (t) => {
  const hook = gate()
  const origin = gate()
  let reachedHook = false
  let reachedOrigin = false
  let handlerCalls = 0
  const later: { refused?: Promise<{ status: number }> } = {}
  const { app, url, port } = await build(t, {}, (app) => {
    app.get('/slow-hook', {
      websocket: true,
      preHandler: async () => { reachedHook = true; await hook.wait }
    }, () => { handlerCalls++ })
    app.get('/slow-origin', {
      websocket: { checkOrigin: async () => { reachedOrigin = true; await origin.wait; return true } }
    }, () => { handlerCalls++ })
    // Registered after the plugin, this preClose hook runs once the shutdown has begun.
    app.addHook('preClose', async () => {
      hook.open()
      origin.open()
      await later.refused
    })
  })
  const refusedLater = rawRequest(port, '/slow-hook', upgradeHeaders())
  later.refused = refusedLater
  const upgradedLater = openWs(`${url}/slow-origin`)
  await waitUntil(() => reachedHook && reachedOrigin)
  await app.close()
  t.equal((await refusedLater).status, 503)
  t.same(await closeOf(await upgradedLater), { code: 1001, reason: 'server shutting down' })
  t.equal(handlerCalls, 0)
})

t.test('clients that send FIN while an async hook runs are refused and leave nothing behind', async (t) => {
  let handlersStarted = 0
  let handlersEnded = 0
  const { app, port, logs } = await build(t, { closeGracePeriod: 60_000 }, (app) => {
    const handler = async (conn: { readMessage: () => Promise<unknown> }): Promise<void> => {
      handlersStarted++
      try {
        await conn.readMessage()
      } catch {} finally {
        handlersEnded++
      }
    }
    // The hook returns only once the server has seen the FIN (nothing was sent after the request,
    // so Node reports it without anyone reading).
    app.get('/fin', {
      websocket: true,
      preHandler: async (request) => {
        const socket = request.raw.socket
        if (!socket.readableEnded && !socket.destroyed) {
          await new Promise((resolve) => { socket.once('end', resolve); socket.once('close', resolve) })
        }
      }
    }, handler)
    // A frame follows the request here: the FIN stays behind it, unseen until someone reads.
    app.get('/fin-after-frame', {
      websocket: true,
      preHandler: async () => { await new Promise((resolve) => setTimeout(resolve, 5)) }
    }, handler)
    // A hook slower than the client: it ends only once the plugin has freed the socket.
    app.get('/fin-slow-hook', {
      websocket: true,
      preHandler: async (request) => {
        const socket = request.raw.socket
        if (!socket.closed) await new Promise((resolve) => socket.once('close', resolve))
      }
    }, handler)
  })
  const serverSockets = trackServerSockets(app.server)
  const frame = clientFrame({ opcode: 1, payload: 'hello' })
  const paths = ['/fin', '/fin-after-frame', '/fin-slow-hook']
  const clients = await Promise.all(Array.from({ length: 51 }, async (_, i) => {
    const socket = await rawClient(port)
    const path = paths[i % 3]!
    socket.write(path === '/fin-after-frame' ? Buffer.concat([Buffer.from(upgradeRequest(port, path)), frame]) : upgradeRequest(port, path))
    socket.end()
    return socket
  }))
  t.ok(await eventually(() => serverSockets.size === 0 && clients.every((c) => c.closed)), 'every server socket was destroyed')
  t.equal(app.websocketConnections.size, 0, 'no connection was kept')
  t.equal(handlersEnded, handlersStarted, 'every handler that started has ended')
  t.notOk(logs.some((e) => e.level >= LEVEL.error), 'nothing logged at error level')
  // With nothing registered, close() has no closing handshake to wait for (the grace period is a minute).
  await app.close()
})

async function waitUntil (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5))
}
