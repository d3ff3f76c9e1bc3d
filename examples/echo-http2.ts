// The echo server of `npm run echo` over cleartext HTTP/2 (h2c), as a Fastify app with the plugin:
// WebSockets are RFC 8441 extended CONNECT streams, many on one connection.
//   PORT=3000 npm run echo:http2
// Paths and handlers as in examples/echo.ts (examples/echo-handlers.ts): /echo, /echo/stream,
// /echo/prepared. COMPRESSION=1 turns on permessage-deflate. Browsers speak HTTP/2 only over TLS:
// this server is for HTTP/2 clients such as Node's own `http2` (and `dial(url, { http2: true })`).
import Fastify from 'fastify'
import wsconn from '../lib/index.js'
import { ECHO_HANDLERS, ECHO_OPTIONS } from './echo-handlers.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

async function main (): Promise<void> {
  const app = Fastify({ http2: true })
  await app.register(wsconn, ECHO_OPTIONS)
  for (const [path, handler] of Object.entries(ECHO_HANDLERS)) {
    // The plugin closes the connection with 1011 only for an unexpected error; a peer's close or a
    // protocol failure ends the handler quietly, the Conn having answered it already.
    app.get(path, { websocket: true }, handler)
  }
  await app.listen({ port, host })
  const address = app.server.address()
  const actualPort = typeof address === 'object' && address !== null ? address.port : port
  console.log(`echo server (h2c) listening on http://${host}:${actualPort}/echo (also /echo/stream, /echo/prepared)`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { app.close().finally(() => process.exit(0)) })
  }
}

main().catch((err: unknown) => {
  console.error('echo:http2 failed:', err)
  process.exit(1)
})
