// A plain registration of the plugin, as a new user writes it: Fastify(), register with the
// defaults, one echo route. `node --import tsx bench/stress/plugin-server.ts` listens on
// 127.0.0.1:$PORT (0 = any free port) and prints the URL; COMPRESSION=1 adds `compression: true`.
import Fastify from 'fastify'
import { fastifyWsconn } from '../../lib/index.js'

async function main (): Promise<void> {
  const app = Fastify()
  await app.register(fastifyWsconn, process.env.COMPRESSION === '1' ? { compression: true } : {})
  app.get('/echo', { websocket: true }, async (conn) => {
    for (;;) {
      const { type, data } = await conn.readMessage()
      await conn.writeMessage(type, data)
    }
  })
  const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
  console.log(`plugin echo server listening on ${address.replace('http:', 'ws:')}/echo`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { app.close().finally(() => process.exit(0)) })
  }
}

main().catch((err: unknown) => {
  console.error('plugin echo server failed:', err)
  process.exit(1)
})
