import t from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { connectH2, connectHeaders, openStream } from './helpers/h2-client.js'
import { messageOf, openWs } from './helpers/plugin.js'
import { selfSignedCert } from './helpers/tls.js'

const pair = selfSignedCert()
const skip = pair === undefined ? 'openssl not found: cannot create a self-signed certificate for the HTTPS server' : false

async function secureApp (allowHTTP1: boolean): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify({ http2: true, https: { ...pair!, allowHTTP1 } } as unknown as FastifyServerOptions)
  await app.register(fastifyWsconn)
  app.get('/echo', { websocket: true }, async (conn, request) => {
    for await (const message of conn) await conn.writeMessage(1, `${request.raw.httpVersion} ${message.data.toString()}`)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as AddressInfo).port }
}

t.test('HTTP/2 over TLS with allowHTTP1: HTTP/1.1 upgrades and extended CONNECT on one server', { skip }, async (t) => {
  const { app, port } = await secureApp(true)
  const ws = await openWs(`wss://localhost:${port}/echo`, { ca: pair!.cert })
  const reply = messageOf(ws)
  ws.send('over 1.1')
  t.equal(await reply, '1.1 over 1.1', 'the ws package upgrades over HTTP/1.1')
  ws.close()

  const session = await connectH2(`https://localhost:${port}`, { ca: pair!.cert })
  // Node's HTTP/2 server stays open while a session does.
  t.teardown(async () => { session.close(); await app.close() })
  t.equal(session.alpnProtocol, 'h2')
  t.equal(session.remoteSettings.enableConnectProtocol, true)
  const stream = await openStream(session, connectHeaders('/echo', `localhost:${port}`, { origin: `https://localhost:${port}` }, 'https'))
  t.equal(stream.status, 200)
  stream.sendText('over h2')
  t.equal((await stream.reader.nextMessage()).data.toString(), '2.0 over h2')
  stream.stream.close()
})

t.test('HTTP/2 over TLS without HTTP/1.1: extended CONNECT only', { skip }, async (t) => {
  const { app, port } = await secureApp(false)
  const session = await connectH2(`https://localhost:${port}`, { ca: pair!.cert })
  // Node's HTTP/2 server stays open while a session does.
  t.teardown(async () => { session.close(); await app.close() })
  const stream = await openStream(session, connectHeaders('/echo', `localhost:${port}`, {}, 'https'))
  stream.sendText('only h2')
  t.equal((await stream.reader.nextMessage()).data.toString(), '2.0 only h2')
  stream.stream.close()
})
