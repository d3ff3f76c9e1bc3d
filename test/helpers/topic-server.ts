// A Fastify app with the plugin and Redis pub/sub, run as its own process by the cross-process
// tests: GET /sub?topic= subscribes a websocket to a topic, POST /publish?topic=[&binary=1]
// publishes the request body (503 with the error's message when Redis did not take it). Prints
// its port on the first line of stdout; SIGTERM closes the app and lets the process exit by itself.
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { fastifyWsconn, PublishError } from '../../lib/index.js'

async function main (): Promise<void> {
  const app = Fastify({ logger: { level: 'info', stream: process.stderr } })
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })
  await app.register(fastifyWsconn, {
    checkOrigin: false,
    pubsub: { redis: { url: process.env.REDIS_URL!, connectTimeout: 1000 } }
  })
  app.get<{ Querystring: { topic: string } }>('/sub', { websocket: true }, async (conn, request) => {
    conn.subscribe(request.query.topic)
    conn.send('subscribed')
  })
  app.post<{ Querystring: { topic: string, binary?: string }, Body: Buffer }>('/publish', async (request, reply) => {
    const data = request.query.binary === '1' ? request.body : request.body.toString()
    try {
      return await app.websocketPublish(request.query.topic, data)
    } catch (error) {
      if (!(error instanceof PublishError)) throw error
      return await reply.code(503).send({ message: error.message, result: error.result })
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  console.log(String((app.server.address() as AddressInfo).port))
  process.once('SIGTERM', () => { app.close().catch((err: unknown) => { console.error(err) }) })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
