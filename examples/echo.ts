// Echo server for conformance suites (Autobahn's fuzzingclient and the like) and interop checks.
//   PORT=3000 npm run echo      then point a client at ws://localhost:3000/echo
// Paths, each exercising a different part of the Conn API (examples/echo-handlers.ts):
//   /echo           readMessage + writeMessage
//   /echo/stream    nextReader + nextWriter (streams each message through in fragments)
//   /echo/prepared  readMessage + PreparedMessage
// `npm run echo:http2` (examples/echo-http2.ts) serves the same paths over cleartext HTTP/2.
// COMPRESSION=1 turns on permessage-deflate (every message compressed, whatever its size).
// HEADERS_TIMEOUT (ms, default 10000; 0 turns it off) bounds how long a new connection may take to
// send its request: connections that stall before it (slowloris) are closed.
import { createServer } from 'node:http'
import { Upgrader, CloseError, guardHandshakes } from '../lib/index.js'
import { ECHO_HANDLERS, ECHO_OPTIONS } from './echo-handlers.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

const upgrader = new Upgrader(ECHO_OPTIONS)

const server = createServer((req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
  res.end('This is a WebSocket echo server: connect to ws://' + (req.headers.host ?? `localhost:${port}`) + '/echo\n')
})

// Node's own header timeout (60 s, checked every 30 s) leaves stalled connections open far too long.
guardHandshakes(server, { headersTimeout: Number(process.env.HEADERS_TIMEOUT ?? 10_000) })

server.on('upgrade', (req, socket, head) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname
  const handler = ECHO_HANDLERS[path]
  if (handler === undefined) {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    return
  }
  upgrader.upgrade(req, socket, head).then(async (conn) => {
    try {
      await handler(conn)
    } catch (error) {
      // A peer's close or a failed connection ends the loop; the Conn has already answered it.
      if (!(error instanceof CloseError)) await conn.close(1011, 'echo failed').catch(() => {})
    }
  }, () => {
    // The Upgrader already sent the HTTP error response and closed the socket.
  })
})

server.listen(port, host, () => {
  const address = server.address()
  const actualPort = typeof address === 'object' && address !== null ? address.port : port
  console.log(`echo server listening on ws://${host}:${actualPort}/echo (also /echo/stream, /echo/prepared)`)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { server.close(); server.closeAllConnections(); process.exit(0) })
}
