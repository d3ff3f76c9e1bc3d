import { randomBytes } from 'node:crypto'
import * as http from 'node:http'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { Conn } from '../conn/conn.js'
import { computeAcceptKey } from '../handshake.js'
import { resolveConnOptions, type ConnOptions } from '../options.js'
import { HandshakeError } from '../protocol/errors.js'
import { createDuplexPair, type PipeEnd } from './duplex-pair.js'

/** Options of `app.injectWS`; the ConnOptions apply to the client Conn it returns. */
export interface InjectWSOptions extends ConnOptions {
  /** Extra request headers (Host defaults to `localhost`; Origin, Authorization, cookies, ...). */
  headers?: Record<string, string>
  /** Subprotocols to offer, in order of preference. */
  subprotocols?: string[]
}

/** Most bytes of a refusal's body that the HandshakeError keeps. */
const MAX_REFUSAL_BODY = 1024

/**
 * Opens a WebSocket connection to `fastify` without a listening port: an in-memory pipe is handed
 * to the HTTP server as a new connection, so the request goes through Node's HTTP parser, the
 * plugin's upgrade routing, the hooks and the handshake exactly like one from the network.
 * Resolves with the client Conn after a valid 101; rejects with a HandshakeError carrying the
 * status, headers and up to 1 KiB of body when the server answers anything else.
 */
export async function injectWS (fastify: FastifyInstance, path = '/', options: InjectWSOptions = {}): Promise<Conn> {
  resolveConnOptions(options)
  await fastify.ready()
  const [serverEnd, clientEnd] = createDuplexPair()
  const server = fastify.server
  // An HTTPS server hands decrypted connections to HTTP as 'secureConnection'; the pipe is plain.
  server.emit(server instanceof TlsServer ? 'secureConnection' : 'connection', serverEnd)
  return await handshake(clientEnd, path, options)
}

function handshake (socket: PipeEnd, path: string, options: InjectWSOptions): Promise<Conn> {
  const key = randomBytes(16).toString('base64')
  const offered = options.subprotocols ?? []
  const headers: http.OutgoingHttpHeaders = { ...options.headers }
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'host')) headers.Host = 'localhost'
  headers.Connection = 'Upgrade'
  headers.Upgrade = 'websocket'
  headers['Sec-WebSocket-Version'] = '13'
  headers['Sec-WebSocket-Key'] = key
  if (offered.length > 0) headers['Sec-WebSocket-Protocol'] = offered.join(', ')

  return new Promise<Conn>((resolve, reject) => {
    const fail = (error: Error): void => {
      socket.destroy()
      reject(error)
    }
    let request: http.ClientRequest
    try {
      request = http.request({ method: 'GET', path, headers, createConnection: () => socket as never })
    } catch (err) {
      fail(err as Error)
      return
    }
    request.on('error', fail)
    request.on('response', (response) => {
      const chunks: Buffer[] = []
      let size = 0
      response.on('data', (chunk: Buffer) => {
        if (size < MAX_REFUSAL_BODY) chunks.push(chunk)
        size += chunk.length
      })
      response.on('close', () => {
        const status = Number(response.statusCode)
        const body = Buffer.concat(chunks).subarray(0, MAX_REFUSAL_BODY)
        fail(new HandshakeError(`bad handshake: the server answered ${status}`, status, { ...response.headers }, body))
      })
    })
    request.on('upgrade', (response: http.IncomingMessage, upgraded: PipeEnd, head: Buffer) => {
      const protocol = response.headers['sec-websocket-protocol'] ?? ''
      if (response.headers['sec-websocket-accept'] !== computeAcceptKey(key)) {
        fail(new HandshakeError("bad handshake: 'Sec-WebSocket-Accept' does not match the key", 101, { ...response.headers }))
        return
      }
      if (protocol !== '' && !offered.includes(protocol)) {
        fail(new HandshakeError(`bad handshake: the server chose subprotocol ${JSON.stringify(protocol)}, which was not offered`, 101, { ...response.headers }))
        return
      }
      resolve(new Conn(upgraded, {
        isServer: false,
        head,
        subprotocol: protocol,
        response: { statusCode: 101, headers: response.headers },
        options
      }))
    })
    request.end()
  })
}
