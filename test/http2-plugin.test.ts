import t from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { parseClose } from './helpers/raw.js'
import { connectH2, connectHeaders, openStream } from './helpers/h2-client.js'

async function h2cApp (): Promise<{ app: FastifyInstance, origin: string, authority: string }> {
  const app = Fastify({ http2: true })
  await app.register(fastifyWsconn)
  app.get('/echo', { websocket: true }, async (conn) => {
    for await (const message of conn) await conn.writeMessage(message.type, message.data)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  return { app, origin: `http://127.0.0.1:${port}`, authority: `127.0.0.1:${port}` }
}

t.test('h2c: the server enables extended CONNECT; WebSockets multiplexed on one session echo and close with 1000', async (t) => {
  const { app, origin, authority } = await h2cApp()
  t.teardown(() => app.close())
  const session = await connectH2(origin)
  t.teardown(() => session.close())
  t.equal(session.remoteSettings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL = 1')
  const sockets = await Promise.all([1, 2, 3].map(async () => await openStream(session, connectHeaders('/echo', authority))))
  for (const [i, ws] of sockets.entries()) {
    t.equal(ws.status, 200)
    t.notOk('sec-websocket-accept' in ws.headers, 'no Sec-WebSocket-Accept over HTTP/2')
    ws.sendText(`text ${i}`)
    ws.sendBinary(Buffer.from([i, 0, 255]))
  }
  for (const [i, ws] of sockets.entries()) {
    const text = await ws.reader.nextMessage()
    t.same([text.opcode, text.data.toString()], [1, `text ${i}`])
    const binary = await ws.reader.nextMessage()
    t.same([binary.opcode, [...binary.data]], [2, [i, 0, 255]])
  }
  for (const ws of sockets) {
    ws.sendClose(1000, 'bye')
    t.equal(parseClose(await ws.reader.nextFrame()).code, 1000, 'the server answers the close')
    await ws.reader.waitEnd()
    ws.stream.end()
  }
  t.equal(session.closed, false, 'the session outlives its WebSockets')
  const again = await openStream(session, connectHeaders('/echo', authority))
  again.sendText('still here')
  t.equal((await again.reader.nextMessage()).data.toString(), 'still here')
  again.stream.close()
})
