'use strict'
const Fastify = require('fastify')
const WebSocket = require('ws')
const { fastifyWsconn, TextMessage, Conn } = require('fastify-wsconn')

async function main () {
  const app = Fastify()
  await app.register(require('fastify-wsconn'), { readLimit: 1024 })
  app.get('/echo', { websocket: true }, async (conn) => {
    const { data } = await conn.readMessage()
    await conn.writeMessage(TextMessage, data)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = /** @type {import('node:net').AddressInfo} */ (app.server.address())

  const client = new WebSocket(`ws://127.0.0.1:${address.port}/echo`)
  await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject))
  client.send('hello from CommonJS JavaScript')
  const echo = await new Promise((resolve) => client.once('message', (data) => resolve(String(data))))
  client.close()
  await app.close()

  console.log(JSON.stringify({
    echo,
    defaultIsPlugin: require('fastify-wsconn') === fastifyWsconn,
    connIsClass: typeof Conn === 'function',
    names: Object.keys(require('fastify-wsconn')).sort()
  }))
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
