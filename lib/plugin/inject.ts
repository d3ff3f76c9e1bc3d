import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import type { Conn } from '../conn/conn.js'
import { dial, type DialOptions } from '../dialer.js'
import { createDuplexPair } from './duplex-pair.js'
import type { ConnectionRegistry } from './registry.js'

/**
 * Options of `app.injectWS`: the Dialer's (`headers`, `subprotocols`, `origin`, `compression`,
 * `handshakeTimeout`, `signal` and the ConnOptions of the client Conn), less the ones that choose
 * a transport. Host defaults to `localhost`.
 */
export type InjectWSOptions = Omit<DialOptions, 'tls' | 'createConnection'>

// The characters Node's http.request refuses in a request path (anything but printable Latin-1).
const UNESCAPED_CHARACTERS = /[^\u0021-\u00ff]/

/**
 * Opens a WebSocket connection to `fastify` without a listening port: an in-memory pipe is handed
 * to the HTTP server as a new connection, so the request goes through Node's HTTP parser, the
 * plugin's upgrade routing, the hooks and the handshake exactly like one from the network, and the
 * client side is the Dialer's, over that pipe. Readies the app first, and once `app.close()` has
 * begun rejects with FST_ERR_REOPENED_CLOSE_SERVER, as `app.inject` does.
 * Resolves with the client Conn once the server side is listed in `websocketConnections` (or has
 * already closed); rejects as `dial` does (a HandshakeError with the status, headers and up to
 * 1 KiB of body when the server refuses).
 */
export async function injectWS (fastify: FastifyInstance, registry: ConnectionRegistry, path = '/', options: InjectWSOptions = {}): Promise<Conn> {
  if (UNESCAPED_CHARACTERS.test(path)) {
    // As http.request reports it: a URL would silently percent-encode what the caller wrote.
    throw Object.assign(new TypeError('Request path contains unescaped characters'), { code: 'ERR_UNESCAPED_CHARACTERS' })
  }
  // As light-my-request (app.inject) reads a path: relative to http://localhost, '//x' a path too.
  const url = path.startsWith('//') ? new URL('ws://localhost' + path) : new URL(path, 'ws://localhost')
  await fastify.ready()
  if (registry.shuttingDown) {
    // app.inject's answer once app.close() has begun; loaded here only, so that importing the
    // package (for its core API, say) does not load Fastify.
    const { errorCodes } = await import('fastify')
    throw new errorCodes.FST_ERR_REOPENED_CLOSE_SERVER()
  }
  const [serverEnd, clientEnd] = createDuplexPair()
  const registered = registry.settled(serverEnd)
  const conn = await dial(url, {
    ...options,
    createConnection: () => {
      const server = fastify.server
      // An HTTPS server hands decrypted connections to HTTP as 'secureConnection'; the pipe is plain.
      server.emit(server instanceof TlsServer ? 'secureConnection' : 'connection', serverEnd)
      return clientEnd
    }
  })
  await registered
  return conn
}
