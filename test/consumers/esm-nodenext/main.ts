import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import WebSocket from 'ws'
import wsconn, { fastifyWsconn, TextMessage, type Conn, type WsconnPluginOptions } from 'fastify-wsconn'
import * as namespace from 'fastify-wsconn'

const options: WsconnPluginOptions = { readLimit: 1024 }
const app = Fastify()
await app.register(wsconn, options)
app.get('/echo', { websocket: true }, async (conn: Conn) => {
  for await (const { type, data } of conn) await conn.writeMessage(type, data)
})
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as AddressInfo

const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject))
client.send('hello from an ES module')
const echo = await new Promise<string>((resolve) => client.once('message', (data) => resolve(String(data))))
client.close()

const other = Fastify()
await other.register(fastifyWsconn)
await other.close()
await app.close()

console.log(JSON.stringify({
  echo,
  defaultIsPlugin: wsconn === fastifyWsconn,
  textMessage: TextMessage,
  names: Object.keys(namespace).sort()
}))
