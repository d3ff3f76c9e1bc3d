import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2SecureServer, Http2Server, Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { SERVICE_UNAVAILABLE_BODY, setPendingUpgrade, type UpgradeRoutingState } from './upgrade-routing.js'

/** The server Fastify made when started with `http2: true`, TLS or cleartext (h2c). */
export type AnyHttp2Server = Http2Server | Http2SecureServer

/**
 * Turns on RFC 8441's SETTINGS_ENABLE_CONNECT_PROTOCOL for every session the server accepts from
 * now on, so clients may open WebSockets as extended CONNECT streams. Node sends a server's
 * settings when a session starts; the plugin loads before the server listens.
 */
export function enableConnectProtocol (server: AnyHttp2Server): void {
  server.updateSettings({ enableConnectProtocol: true })
}

/**
 * Serves the websocket routes of an HTTP/2 Fastify server over extended CONNECT streams as well
 * (HTTP/1.1 upgrades go on with `allowHTTP1`); returns the function that stops taking them.
 */
export function serveHttp2 (fastify: FastifyInstance, state: UpgradeRoutingState): () => void {
  const server = fastify.server as unknown as AnyHttp2Server
  enableConnectProtocol(server)
  const onConnect = createConnectListener(fastify, state)
  server.on('connect', onConnect)
  return () => { server.off('connect', onConnect) }
}

/** Whether `server` is a cleartext HTTP/2 server (h2c), which takes HTTP/2 connections only. */
export function isCleartextHttp2 (server: object): boolean {
  return typeof (server as Partial<AnyHttp2Server>).updateSettings === 'function' && !(server instanceof TlsServer)
}

/** Whether a listener other than `own` takes CONNECT requests. */
function hasOtherConnectListener (server: AnyHttp2Server, own: unknown): boolean {
  return server.listeners('connect').some((listener) => listener !== own)
}

/**
 * Builds the HTTP/2 server's 'connect' listener: each extended CONNECT for a WebSocket
 * (`:protocol websocket`, RFC 8441) goes through `fastify.routing` as the GET it stands for, so
 * the route's hooks and schemas run before the handshake, and whatever Fastify answers (404, a
 * hook's 401, the 426 of a websocket-only route to plain GET) is the stream's response. Only the
 * stream is answered; its session goes on. Other CONNECT requests are left to another listener or
 * answered 405, as Node does without one.
 */
export function createConnectListener (fastify: FastifyInstance, state: UpgradeRoutingState): (req: Http2ServerRequest, res: Http2ServerResponse) => void {
  const server = fastify.server as unknown as AnyHttp2Server
  const log = fastify.log
  return function onConnect (req, res) {
    if (req.headers[':protocol'] !== 'websocket') {
      if (hasOtherConnectListener(server, onConnect)) return
      res.writeHead(405).end()
      return
    }
    if (state.shuttingDown) {
      refuseUnavailable(res)
      return
    }
    setPendingUpgrade(req, {
      // After `reply.hijack()` Fastify no longer answers on the response; the stream is the handshake's.
      claim () {},
      handshake: async (upgrader, hooks) => await upgrader.upgradeStream(req, undefined, hooks),
      refuseUnavailable () { refuseUnavailable(res) }
    })
    // The route is declared as GET: RFC 8441 §5 has the CONNECT take the place of HTTP/1.1's GET.
    ;(req as { method: string }).method = 'GET'
    try {
      fastify.routing(req as unknown as IncomingMessage, res as unknown as ServerResponse)
    } catch (err) {
      log.warn({ err }, 'websocket: routing an HTTP/2 WebSocket request failed')
      req.stream.destroy()
    }
  }
}

/** Answers 503 on the stream, as Fastify does while closing. */
function refuseUnavailable (res: Http2ServerResponse): void {
  res.writeHead(503, { 'content-type': 'application/json; charset=utf-8' }).end(SERVICE_UNAVAILABLE_BODY)
}
