import t from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { dial } from '../lib/dialer.js'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { messageOf, openWs } from './helpers/plugin.js'
import { selfSignedCert } from './helpers/tls.js'

// node:crypto can make key pairs but not X.509 certificates, so openssl is used.
const pair = selfSignedCert()

t.test('wss:// through an HTTPS Fastify server: ws client, our Dialer and injectWS', {
  skip: pair === undefined ? 'openssl not found: cannot create a self-signed certificate for the HTTPS server' : false
}, async (t) => {
  if (pair === undefined) return
  const app = Fastify({ https: pair })
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  app.get('/secure', { websocket: true }, async (conn, request) => {
    const message = await conn.readMessage()
    await conn.writeMessage(1, `${request.protocol}: ${message.data.toString()}`)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port

  const ws = await openWs(`wss://localhost:${port}/secure`, { ca: pair.cert })
  const reply = messageOf(ws)
  ws.send('ws client')
  t.equal(await reply, 'https: ws client')
  ws.close()

  const conn = await dial(`wss://localhost:${port}/secure`, { tls: { ca: pair.cert } })
  await conn.writeMessage(1, 'our dialer')
  t.equal((await conn.readMessage()).data.toString(), 'https: our dialer')
  await conn.close()

  const injected = await app.injectWS('/secure')
  await injected.writeMessage(1, 'injected')
  t.equal((await injected.readMessage()).data.toString(), 'http: injected', 'the in-memory pipe carries no TLS')
  await injected.close()
})
