import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import WebSocket = require('ws')
import wsconn, { TextMessage, type Conn } from 'fastify-wsconn'
import required = require('fastify-wsconn')

async function main (): Promise<void> {
  const app = Fastify()
  await app.register(wsconn, { readLimit: 1024 })
  app.get('/echo', { websocket: true }, async (conn: Conn) => {
    const { data } = await conn.readMessage()
    await conn.writeMessage(TextMessage, data)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo

  const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
  await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject))
  client.send('hello from CommonJS TypeScript')
  const echo = await new Promise<string>((resolve) => client.once('message', (data) => resolve(String(data))))
  client.close()

  const other = Fastify()
  await other.register(required)
  await other.close()
  await app.close()

  console.log(JSON.stringify({ echo, defaultIsPlugin: wsconn === required && required.default === required }))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
