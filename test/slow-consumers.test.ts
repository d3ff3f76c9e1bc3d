// Slow consumers over real TCP with `ws` clients: a client that stops reading is held to
// maxBufferedAmount (its messages dropped and counted, or the connection closed with 1008), while
// the fast subscribers of the same topic get every message in order and the publisher never waits.
// Awaited writes are never refused, only delayed, and a message sent on an idle connection is
// never refused for its size.
import t from 'tap'
import type { Socket } from 'node:net'
import { Hub } from '../lib/hub/hub.js'
import { BinaryMessage, TextMessage } from '../lib/protocol/constants.js'
import { PreparedMessage } from '../lib/prepared-message.js'
import { UpgraderServer, type RecordingClient } from './helpers/topic-clients.js'

const LIMIT = 1024 * 1024
const MESSAGE_SIZE = 16 * 1024
const MESSAGES = 2000

function socketOf (client: RecordingClient): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket
}

function numbered (n: number): Buffer {
  const message = Buffer.alloc(MESSAGE_SIZE, n % 251)
  message.writeUInt32BE(n, 0)
  return message
}

const nextTurn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

t.test("'drop': the slow subscriber skips messages, the fast ones get all of them in order", async (t) => {
  const hub = new Hub()
  const server = await UpgraderServer.start(t, { hub, maxBufferedAmount: LIMIT, slowConsumerPolicy: 'drop' })
  const fast = [await server.connect(), await server.connect(), await server.connect()]
  const slow = await server.connect()
  for (const { conn } of [...fast, slow]) conn.subscribe('feed')
  socketOf(slow.client).pause()

  let delivered = 0
  let dropped = 0
  let mostBuffered = 0
  for (let n = 0; n < MESSAGES; n++) {
    const result = await hub.publish('feed', numbered(n))
    delivered += result.delivered
    dropped += result.dropped
    t.equal(result.closed, 0)
    mostBuffered = Math.max(mostBuffered, slow.conn.bufferedAmount)
    // The fast clients live in this process: let them read now and then.
    if (n % 8 === 7) await nextTurn()
  }
  await Promise.all(fast.map(async ({ client }) => await client.waitFor(MESSAGES)))
  for (const [i, { client, conn }] of fast.entries()) {
    const order = client.received.map((message) => message.data.readUInt32BE(0))
    t.same(order, Array.from({ length: MESSAGES }, (_, n) => n), `fast subscriber ${i} got all ${MESSAGES} in order`)
    t.equal(conn.droppedMessages, 0)
  }
  t.ok(dropped > 0, `the slow subscriber was skipped ${dropped} times`)
  t.equal(slow.conn.droppedMessages, dropped, 'counted on its connection')
  t.equal(delivered + dropped, MESSAGES * 4, 'every offer was delivered or dropped')
  t.ok(mostBuffered <= LIMIT + MESSAGE_SIZE, `what the slow one buffers stays bounded (${mostBuffered} bytes at most)`)

  // Once it reads again it gets what it was not skipped for, in order, and then new messages.
  socketOf(slow.client).resume()
  const expected = MESSAGES - dropped
  await slow.client.waitFor(expected)
  const seen = slow.client.received.map((message) => message.data.readUInt32BE(0))
  t.ok(seen.every((n, i) => i === 0 || n > seen[i - 1]!), 'in publish order, with gaps')
  await hub.publish('feed', numbered(MESSAGES))
  await slow.client.waitFor(expected + 1)
  t.equal(slow.client.received.at(-1)!.data.readUInt32BE(0), MESSAGES)
})

t.test("'close': the slow subscriber is closed with 1008 after what it was sent, the others go on", async (t) => {
  const hub = new Hub()
  const server = await UpgraderServer.start(t, { hub, maxBufferedAmount: LIMIT })
  const fast = await server.connect()
  const slow = await server.connect()
  fast.conn.subscribe('feed')
  slow.conn.subscribe('feed')
  socketOf(slow.client).pause()
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    slow.client.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  let n = 0
  let closedCount = 0
  while (closedCount === 0) {
    const result = await hub.publish('feed', numbered(n++))
    closedCount = result.closed
    if (n % 8 === 0) await nextTurn()
  }
  t.equal(slow.conn.send('refused'), false, 'a closing connection takes nothing more')
  await hub.publish('feed', numbered(n++))
  t.equal(hub.subscriberCount('feed'), 2, 'still listed until its socket closes')
  socketOf(slow.client).resume()
  t.same(await closed, { code: 1008, reason: `slow consumer: more than ${LIMIT} bytes waiting to be written` })
  await slow.conn.closed
  t.equal(slow.client.received.length, n - 2, 'it got every message accepted before the close')
  t.equal(hub.subscriberCount('feed'), 1)
  await fast.client.waitFor(n)
  t.equal(fast.client.received.length, n, 'the fast subscriber got all of them')
})

t.test('send(): the type comes from the data; limits apply to it, never to awaited writes', async (t) => {
  const server = await UpgraderServer.start(t, { maxBufferedAmount: LIMIT, slowConsumerPolicy: 'drop' })
  const { client, conn } = await server.connect()
  t.equal(conn.send('text'), true)
  t.equal(conn.send(Buffer.from([1, 2, 3])), true)
  t.equal(conn.send(new Uint8Array([4])), true)
  t.equal(conn.send(new PreparedMessage(TextMessage, 'prepared')), true)
  t.throws(() => conn.send(5 as unknown as string), { message: /must be a string, Buffer/ })
  await client.waitFor(4)
  t.same(client.received.map((m) => m.binary), [false, true, true, false])

  // Nothing buffered: even a message three times the limit is taken.
  const big = Buffer.alloc(3 * LIMIT, 7)
  socketOf(client).pause()
  t.equal(conn.send(big), true, 'a message on an idle connection is never refused for its size')
  // Fill until send() refuses: awaited writes of the same size still queue and wait.
  while (conn.send(big)) await nextTurn()
  t.ok(conn.bufferedAmount > LIMIT)
  const dropped = conn.droppedMessages
  t.ok(dropped >= 1)
  const awaited = [conn.writeMessage(BinaryMessage, big), conn.writeMessage(TextMessage, 'after')]
  t.ok(conn.bufferedAmount > 2 * LIMIT, 'queued awaited writes count in bufferedAmount')
  socketOf(client).resume()
  await Promise.all(awaited)
  await client.waitFor(client.received.length + 1)
  await new Promise<void>((resolve) => {
    const check = (): void => { if (client.texts().at(-1) === 'after') resolve(); else setTimeout(check, 10) }
    check()
  })
  t.equal(conn.droppedMessages, dropped, 'awaited writes were not counted as dropped')
  t.equal(conn.bufferedAmount, 0)
})

t.test('option checks', async (t) => {
  await t.rejects(UpgraderServer.start(t, { maxBufferedAmount: -1 }), /maxBufferedAmount must be an integer >= 0, got -1/)
  await t.rejects(UpgraderServer.start(t, { maxBufferedAmount: 1.5 }), /maxBufferedAmount must be an integer >= 0, got 1.5/)
  await t.rejects(UpgraderServer.start(t, { slowConsumerPolicy: 'block' as 'drop' }), /slowConsumerPolicy must be 'close' or 'drop', got "block"/)
  const unlimited = await UpgraderServer.start(t, { maxBufferedAmount: 0 })
  const { client, conn } = await unlimited.connect()
  socketOf(client).pause()
  const chunk = Buffer.alloc(LIMIT)
  for (let i = 0; i < 8; i++) t.equal(conn.send(chunk), true, 'no limit with 0')
  t.equal(conn.droppedMessages, 0)
})
