// conn.onMessage, the event-style way to read: every message whole and in order to one handler,
// with no promise per message. Checked against the `ws` client over loopback TCP (plain and
// compressed, fragmented and large), and with a raw peer for flow control, failures and the end.
import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import type { Conn, Message } from '../lib/conn/conn.js'
import wsconn from '../lib/plugin/index.js'
import { CloseError, ProtocolError, UsageError } from '../lib/protocol/errors.js'
import { Upgrader, type UpgraderOptions } from '../lib/upgrader.js'
import { compressPayload } from './helpers/deflate.js'
import { UpgradeServer, textOf } from './helpers/compression-peers.js'
import { prng, randomBytes } from './helpers/frames.js'
import { collectLogs, LEVEL } from './helpers/plugin.js'
import { clientFrame, closePayload, parseClose, rawPeer } from './helpers/raw.js'
import { WireClient, clientFrame as wireFrame } from './helpers/wire-client.js'

const TEXT = 1
const BINARY = 2
const CLOSE = 8

type Teardown = { teardown: (fn: () => unknown) => void }

/** A server whose upgrades become Conns handed to `onConn`; resolves with its port. */
async function upgradeServer (t: Teardown, options: UpgraderOptions, onConn: (conn: Conn) => void): Promise<number> {
  const http = await UpgradeServer.start()
  const upgrader = new Upgrader(options)
  const conns: Conn[] = []
  http.route('/', (req, socket, head) => {
    upgrader.upgrade(req, socket, head).then((conn) => {
      conns.push(conn)
      onConn(conn)
    }, () => {})
  })
  t.teardown(async () => {
    for (const conn of conns) conn.terminate()
    await http.close()
  })
  return http.port
}

/** A ws client that collects what it receives and how it was closed. */
async function wsClient (port: number, options: WebSocket.ClientOptions = {}, path = '/'): Promise<{
  ws: WebSocket
  received: Array<{ binary: boolean, data: Buffer }>
  closed: Promise<{ code: number, reason: string }>
}> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, options)
  const received: Array<{ binary: boolean, data: Buffer }> = []
  ws.on('message', (data, isBinary) => { received.push({ binary: isBinary, data: data as Buffer }) })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
  })
  await once(ws, 'open')
  return { ws, received, closed }
}

/** A promise and the functions that settle it. */
function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void, reject: (error: Error) => void } {
  const settle = {} as { resolve: (value: T) => void, reject: (error: Error) => void }
  const promise = new Promise<T>((resolve, reject) => { Object.assign(settle, { resolve, reject }) })
  return { promise, ...settle }
}

for (const compression of [false, true]) {
  t.test(`a ws client's messages reach the handler whole and in order${compression ? ', compressed' : ''}`, async (t) => {
    const random = prng(compression ? 11 : 10)
    const sizes = [0, 1, 125, 126, 65535, 65536, 300_000, 17, 2_000_000, 3]
    const payloads = sizes.map((size) => randomBytes(random, size))
    let ended: Promise<void> | undefined
    const handled: Message[] = []
    const port = await upgradeServer(t, { compression }, (conn) => {
      ended = conn.onMessage((message) => {
        handled.push(message)
        // Compressed: the write's promise holds the next message back while it compresses.
        if (compression) return conn.writeMessage(message.type, message.data)
        // A value that is not a promise (send's boolean) is ignored.
        return conn.send(message.type === TEXT ? message.data.toString() : message.data)
      })
    })
    const client = await wsClient(port, { perMessageDeflate: compression })
    for (const [i, payload] of payloads.entries()) {
      if (i % 3 === 1) {
        // Fragmented by the client: three frames of one message.
        const third = Math.ceil(payload.length / 3)
        client.ws.send(payload.subarray(0, third), { binary: true, fin: false })
        client.ws.send(payload.subarray(third, 2 * third), { binary: true, fin: false })
        client.ws.send(payload.subarray(2 * third), { binary: true, fin: true })
      } else {
        client.ws.send(payload)
      }
    }
    client.ws.send('h\u00e9llo \u{1f600}')
    while (client.received.length < payloads.length + 1) await once(client.ws, 'message')
    t.equal(handled.length, payloads.length + 1, 'one handler call per message')
    for (const [i, payload] of payloads.entries()) {
      t.equal(handled[i]!.type, BINARY, `message ${i} is binary`)
      t.ok(handled[i]!.data.equals(payload), `message ${i} (${sizes[i]} bytes) intact at the handler`)
      t.ok(client.received[i]!.data.equals(payload), `message ${i} echoed intact`)
    }
    t.same({ type: handled.at(-1)!.type, text: handled.at(-1)!.data.toString() }, { type: TEXT, text: 'h\u00e9llo \u{1f600}' })
    client.ws.close(1000, 'bye')
    await t.resolves(ended!, 'a close with 1000 resolves onMessage')
    t.equal((await client.closed).code, 1000, 'the close handshake completes')
  })
}

t.test('a promise from the handler holds the next message back until it settles', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const calls: string[] = []
  let running = 0
  let mostAtOnce = 0
  const gates = [deferred(), deferred(), deferred()]
  const ended = conn.onMessage(async (message) => {
    running++
    mostAtOnce = Math.max(mostAtOnce, running)
    calls.push(message.data.toString())
    await gates[calls.length - 1]?.promise
    running--
  })
  peer.write(Buffer.concat(['one', 'two', 'three', 'four'].map((payload) => clientFrame({ opcode: TEXT, payload }))))
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(1001, 'going') }))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(calls, ['one'], 'the second message waits for the first call')
  gates[0]!.resolve()
  gates[1]!.resolve()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(calls, ['one', 'two', 'three'])
  let settled = false
  ended.then(() => { settled = true }, () => { settled = true })
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.notOk(settled, 'the close waits for the running call')
  gates[2]!.resolve()
  await t.resolves(ended, 'a close with 1001 resolves onMessage after the last call settled')
  t.same(calls, ['one', 'two', 'three', 'four'])
  t.equal(mostAtOnce, 1, 'never two calls at once')
})

t.test('a busy handler pauses the socket at the read-ahead, and reading goes on after it', async (t) => {
  const { conn, connSocket, peer, cleanup } = await rawPeer({ readBufferSize: 64 * 1024 })
  t.teardown(cleanup)
  const gate = deferred()
  let bytes = 0
  conn.onMessage(async (message) => {
    bytes += message.data.length
    await gate.promise
  }).catch(() => {})
  const payload = Buffer.alloc(16 * 1024, 7)
  for (let i = 0; i < 40; i++) peer.write(clientFrame({ opcode: BINARY, payload }))
  while (!connSocket.isPaused()) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(bytes, payload.length, 'one message handled while the call runs')
  gate.resolve()
  while (bytes < 40 * payload.length) await new Promise((resolve) => setTimeout(resolve, 5))
  t.notOk(connSocket.isPaused(), 'the socket reads again')
})

t.test('one message larger than the read-ahead still reaches an idle handler', async (t) => {
  const { conn, peer, cleanup } = await rawPeer({ readBufferSize: 1024 })
  t.teardown(cleanup)
  const payload = randomBytes(prng(12), 1024 * 1024)
  const got = deferred<Buffer>()
  conn.onMessage((message) => { got.resolve(message.data) }).catch(() => {})
  peer.write(clientFrame({ opcode: BINARY, payload }))
  t.ok((await got.promise).equals(payload))
})

for (const how of ['throws', 'rejects'] as const) {
  t.test(`a handler that ${how} ends delivery and closes with 1011`, async (t) => {
    const { conn, peer, wire, cleanup } = await rawPeer()
    t.teardown(cleanup)
    const calls: string[] = []
    const failure = new Error('handler broke')
    const ended = conn.onMessage((message) => {
      calls.push(message.data.toString())
      if (how === 'throws') throw failure
      return Promise.reject(failure)
    })
    peer.write(Buffer.concat([clientFrame({ opcode: TEXT, payload: 'a' }), clientFrame({ opcode: TEXT, payload: 'b' })]))
    await t.rejects(ended, failure, 'onMessage rejects with the handler error')
    const closeFrame = await wire.nextFrame()
    t.same(parseClose(closeFrame), { code: 1011, reason: 'message handler failed' })
    t.same(calls, ['a'], 'no call after the failure')
  })
}

t.test('messages that arrived first go to the handler first, after onMessage returns', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(Buffer.concat(['early 1', 'early 2'].map((payload) => clientFrame({ opcode: TEXT, payload }))))
  // Both wait in the inbox once a first read took nothing.
  const first = await conn.readMessage()
  t.equal(first.data.toString(), 'early 1')
  const calls: string[] = []
  let returned = false
  conn.onMessage((message) => {
    t.ok(returned, 'not called inside onMessage')
    calls.push(message.data.toString())
  }).catch(() => {})
  returned = true
  peer.write(clientFrame({ opcode: TEXT, payload: 'late' }))
  while (calls.length < 2) await new Promise((resolve) => setTimeout(resolve, 5))
  t.same(calls, ['early 2', 'late'])
})

t.test('reads and a second handler are refused while a handler is set; an abort gives messages back', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const controller = new AbortController()
  const calls: string[] = []
  const ended = conn.onMessage((message) => { calls.push(message.data.toString()) }, { signal: controller.signal })
  await t.rejects(conn.readMessage(), UsageError, 'readMessage')
  await t.rejects(conn.nextReader(), UsageError, 'nextReader')
  await t.rejects(conn[Symbol.asyncIterator]().next(), UsageError, 'the iterator')
  await t.rejects(conn.onMessage(() => {}), { name: 'UsageError', message: /already set/ })
  peer.write(clientFrame({ opcode: TEXT, payload: 'to the handler' }))
  while (calls.length < 1) await new Promise((resolve) => setTimeout(resolve, 5))
  const reason = new Error('stop handling')
  controller.abort(reason)
  await t.rejects(ended, reason, 'an abort rejects onMessage with its reason')
  peer.write(clientFrame({ opcode: TEXT, payload: 'to a read' }))
  t.equal((await conn.readMessage()).data.toString(), 'to a read', 'reads work again')
  t.same(calls, ['to the handler'])
  await t.rejects(conn.onMessage(() => {}, { signal: AbortSignal.abort(reason) }), reason, 'an aborted signal refuses at once')
})

t.test('onMessage is refused while a read waits', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const reading = conn.readMessage()
  await t.rejects(conn.onMessage(() => {}), { name: 'UsageError', message: /reads are waiting/ })
  peer.write(clientFrame({ opcode: TEXT, payload: 'x' }))
  t.equal((await reading).data.toString(), 'x')
})

t.test('an abnormal end and a protocol error reject onMessage', async (t) => {
  const lost = await rawPeer()
  t.teardown(lost.cleanup)
  const endedLost = lost.conn.onMessage(() => {})
  lost.peer.destroy()
  const error = await endedLost.then(() => undefined, (error: unknown) => error)
  t.ok(error instanceof CloseError && error.code === 1006, 'a lost peer: CloseError 1006')

  const broken = await rawPeer()
  t.teardown(broken.cleanup)
  const endedBroken = broken.conn.onMessage(() => {})
  broken.peer.write(clientFrame({ opcode: BINARY, payload: 'unmasked', mask: false }))
  await t.rejects(endedBroken, ProtocolError)
  t.equal(parseClose(await broken.wire.nextFrame()).code, 1002)
})

t.test('a result nobody awaits never becomes an unhandled rejection', async (t) => {
  const { conn, peer, wire, cleanup } = await rawPeer()
  t.teardown(cleanup)
  let unhandled: unknown
  const onUnhandled = (reason: unknown): void => { unhandled = reason }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  conn.onMessage(() => { throw new Error('nobody listens') })
  peer.write(clientFrame({ opcode: TEXT, payload: 'x' }))
  t.equal(parseClose(await wire.nextFrame()).code, 1011)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(unhandled, undefined)
})

t.test('a plugin route reads with onMessage; its failure is the route error (1011, logged)', async (t) => {
  const logs = collectLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(() => app.close())
  await app.register(wsconn)
  app.get('/echo', { websocket: true }, async (conn) => {
    await conn.onMessage((message) => {
      if (message.data.toString() === 'fail') throw new Error('bad input')
      conn.send(message.data.toString().toUpperCase())
    })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const client = await wsClient(port, {}, '/echo')
  client.ws.send('hello')
  client.ws.send('again')
  while (client.received.length < 2) await once(client.ws, 'message')
  t.same(client.received.map((m) => m.data.toString()), ['HELLO', 'AGAIN'])
  client.ws.send('fail')
  t.equal((await client.closed).code, 1011)
  const logged = await logs.waitFor((entry) => entry.err?.message === 'bad input')
  t.equal(logged.level, LEVEL.error, 'the handler error is logged as the route error')
})

t.test('after an abort, a call still running neither closes the connection nor delivers more', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  for (const outcome of ['rejects', 'resolves'] as const) {
    const controller = new AbortController()
    const gate = deferred()
    const calls: string[] = []
    const ended = conn.onMessage(async (message) => {
      calls.push(message.data.toString())
      await gate.promise
    }, { signal: controller.signal })
    peer.write(clientFrame({ opcode: TEXT, payload: `first ${outcome}` }))
    while (calls.length < 1) await new Promise((resolve) => setTimeout(resolve, 5))
    peer.write(clientFrame({ opcode: TEXT, payload: `second ${outcome}` }))
    controller.abort(new Error('taken back'))
    await t.rejects(ended, { message: 'taken back' })
    if (outcome === 'rejects') gate.reject(new Error('late failure'))
    else gate.resolve()
    t.equal((await conn.readMessage()).data.toString(), `second ${outcome}`, `the next message goes to a read after the call ${outcome}`)
    t.same(calls, [`first ${outcome}`])
  }
  await conn.writeMessage(TEXT, 'still open')
})

t.test('an abort right after onMessage returns hands nothing to the handler', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: TEXT, payload: 'waiting' }))
  t.equal((await conn.readMessage()).data.toString(), 'waiting')
  peer.write(clientFrame({ opcode: TEXT, payload: 'queued' }))
  await new Promise((resolve) => setTimeout(resolve, 20))
  const controller = new AbortController()
  let called = false
  const ended = conn.onMessage(() => { called = true }, { signal: controller.signal })
  controller.abort()
  await t.rejects(ended)
  t.equal((await conn.readMessage()).data.toString(), 'queued')
  t.notOk(called)
})

t.test('a handler with a signal that sees the connection end normally lets go of the signal', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  const controller = new AbortController()
  const ended = conn.onMessage(() => {}, { signal: controller.signal })
  peer.write(clientFrame({ opcode: CLOSE, payload: closePayload(1000) }))
  await t.resolves(ended)
  controller.abort(new Error('too late'))
  await t.resolves(ended, 'an abort after the end changes nothing')
})

t.test('onMessage after a streaming reader drops the rest of its message', async (t) => {
  const { conn, peer, cleanup } = await rawPeer()
  t.teardown(cleanup)
  peer.write(clientFrame({ opcode: BINARY, payload: 'start of a message', fin: false }))
  const reader = await conn.nextReader()
  t.equal((await reader.read())?.toString(), 'start of a message')
  const calls: string[] = []
  conn.onMessage((message) => { calls.push(message.data.toString()) }).catch(() => {})
  peer.write(Buffer.concat([clientFrame({ opcode: 0, payload: ' and its end' }), clientFrame({ opcode: TEXT, payload: 'next' })]))
  while (calls.length < 1) await new Promise((resolve) => setTimeout(resolve, 5))
  t.same(calls, ['next'], 'the handler starts with the next message')
})

t.test('messages held behind an inflation when TCP ended still reach a handler set afterwards', async (t) => {
  const conns: Conn[] = []
  const port = await upgradeServer(t, { compression: true }, (conn) => { conns.push(conn) })
  const client = await WireClient.open(port, '/', 'Sec-WebSocket-Extensions: permessage-deflate\r\n')
  while (conns.length === 0) await new Promise((resolve) => setImmediate(resolve))
  const conn = conns[0]!
  // 8 MiB inflate on the threadpool for long after the TCP end behind them has arrived.
  const big = textOf(8 * 1024 * 1024, 5)
  const small = Buffer.from('{"after":"the big one"}')
  const reading = conn.readMessage()
  client.sendRaw(Buffer.concat([
    wireFrame({ opcode: TEXT, rsv: 4, payload: compressPayload(big) }),
    wireFrame({ opcode: TEXT, rsv: 4, payload: compressPayload(small) })
  ]))
  client.socket.end()
  t.equal((await reading).data.length, big.length, 'a read took the big message')
  const calls: Buffer[] = []
  const ended = conn.onMessage((message) => { calls.push(message.data) })
  const error = await ended.then(() => undefined, (error: unknown) => error)
  t.same(calls.map((data) => data.toString()), [small.toString()], 'the handler got the message held behind it')
  t.ok(error instanceof CloseError && error.code === 1006, 'then onMessage rejects with 1006')
})
