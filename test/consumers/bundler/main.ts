import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import WebSocket from 'ws'
import wsconn, { fastifyWsconn, BinaryMessage, Conn } from 'fastify-wsconn'

const app = Fastify()
await app.register(wsconn, { readLimit: 1024 })
app.get('/echo', { websocket: true }, async (conn) => {
  const { data } = await conn.readMessage()
  await conn.writeMessage(BinaryMessage, data)
})
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as AddressInfo

const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject))
client.send('hello from a bundler build')
const echo = await new Promise<string>((resolve) => client.once('message', (data) => resolve(String(data))))
client.close()
await app.close()

console.log(JSON.stringify({
  echo,
  defaultIsPlugin: wsconn === fastifyWsconn,
  connIsClass: typeof Conn === 'function'
}))
