// The echo handlers of `npm run echo` (HTTP/1.1, bare Upgrader) and `npm run echo:http2` (Fastify
// over cleartext HTTP/2, the plugin): one per path, each exercising a different part of the Conn API.
import { PreparedMessage, type Conn } from '../lib/index.js'

/** readMessage + writeMessage. */
export async function echoWhole (conn: Conn): Promise<void> {
  for (;;) {
    const { type, data } = await conn.readMessage()
    await conn.writeMessage(type, data)
  }
}

/** nextReader + nextWriter: each message streamed through in fragments. */
export async function echoStreamed (conn: Conn): Promise<void> {
  for (;;) {
    const reader = await conn.nextReader()
    const writer = await conn.nextWriter(reader.type)
    for await (const piece of reader) await writer.write(piece)
    await writer.close()
  }
}

/** readMessage + PreparedMessage. */
export async function echoPrepared (conn: Conn): Promise<void> {
  for (;;) {
    const { type, data } = await conn.readMessage()
    await conn.writePreparedMessage(new PreparedMessage(type, data))
  }
}

/** Every echo path and its handler. */
export const ECHO_HANDLERS: Record<string, (conn: Conn) => Promise<void>> = {
  '/echo': echoWhole,
  '/echo/stream': echoStreamed,
  '/echo/prepared': echoPrepared
}

/** The options both echo servers share: conformance clients send no Origin and large messages. */
export const ECHO_OPTIONS = {
  // Conformance clients send no Origin or a foreign one; this server holds nothing worth protecting.
  checkOrigin: () => true,
  readLimit: 64 * 1024 * 1024,
  // permessage-deflate with every parameter a client may ask for, when COMPRESSION=1.
  compression: process.env.COMPRESSION === '1' ? { threshold: 0 } : false,
  writeBufferSize: 16 * 1024
} as const
