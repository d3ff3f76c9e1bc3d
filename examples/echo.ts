// Echo server for conformance suites (Autobahn's fuzzingclient and the like) and interop checks.
//   PORT=3000 npm run echo      then point a client at ws://localhost:3000/echo
// Paths, each exercising a different part of the Conn API:
//   /echo           readMessage + writeMessage
//   /echo/stream    nextReader + nextWriter (streams each message through in fragments)
//   /echo/prepared  readMessage + PreparedMessage
// COMPRESSION=1 turns on permessage-deflate (every message compressed, whatever its size).
// HEADERS_TIMEOUT (ms, default 10000; 0 turns it off) bounds how long a new connection may take to
// send its request: connections that stall before it (slowloris) are closed.
import { createServer } from 'node:http'
import { Upgrader, PreparedMessage, CloseError, guardHandshakes, type Conn } from '../lib/index.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
const MiB = 1024 * 1024

const upgrader = new Upgrader({
  // Conformance clients send no Origin or a foreign one; this server holds nothing worth protecting.
  checkOrigin: () => true,
  readLimit: 64 * MiB,
  // permessage-deflate with every parameter a client may ask for, when COMPRESSION=1.
  compression: process.env.COMPRESSION === '1' ? { threshold: 0 } : false,
  writeBufferSize: 16 * 1024
})

async function echoWhole (conn: Conn): Promise<void> {
  for (;;) {
    const { type, data } = await conn.readMessage()
    await conn.writeMessage(type, data)
  }
}

async function echoStreamed (conn: Conn): Promise<void> {
  for (;;) {
    const reader = await conn.nextReader()
    const writer = await conn.nextWriter(reader.type)
    for await (const piece of reader) await writer.write(piece)
    await writer.close()
  }
}

async function echoPrepared (conn: Conn): Promise<void> {
  for (;;) {
    const { type, data } = await conn.readMessage()
    await conn.writePreparedMessage(new PreparedMessage(type, data))
  }
}

const handlers: Record<string, (conn: Conn) => Promise<void>> = {
  '/echo': echoWhole,
  '/echo/stream': echoStreamed,
  '/echo/prepared': echoPrepared
}

const server = createServer((req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
  res.end('This is a WebSocket echo server: connect to ws://' + (req.headers.host ?? `localhost:${port}`) + '/echo\n')
})

// Node's own header timeout (60 s, checked every 30 s) leaves stalled connections open far too long.
guardHandshakes(server, { headersTimeout: Number(process.env.HEADERS_TIMEOUT ?? 10_000) })

server.on('upgrade', (req, socket, head) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname
  const handler = handlers[path]
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
