// Crowds of raw TCP clients that misbehave around the opening handshake (half a request and a
// stall, or a whole request and an immediate FIN), a watch on the sockets a server holds, and an
// echo round trip through a ws client.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { request as httpRequest, type Agent, type Server } from 'node:http'
import { request as httpsRequest } from 'node:https'
import WebSocket from 'ws'

/** The request head of a valid WebSocket upgrade for `path` (a fresh key each call). */
export function upgradeRequest (port: number, path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
}

/** A raw client socket whose errors are ignored and whose received bytes are discarded. */
export async function rawClient (port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.on('data', () => {})
  await once(socket, 'connect')
  return socket
}

/**
 * Opens `count` connections that each send `bytes` (say, half a request) and then stall; resolves
 * with the sockets once all are connected and have written.
 */
export async function stalledClients (port: number, count: number, bytes: string): Promise<Socket[]> {
  return await Promise.all(Array.from({ length: count }, async () => {
    const socket = await rawClient(port)
    socket.write(bytes)
    return socket
  }))
}

/** Resolves with true once every socket in `sockets` has closed, or false after `limitMs` (a bound against a hang). */
export async function allClosed (sockets: Iterable<Socket>, limitMs = 10_000): Promise<boolean> {
  const list = [...sockets]
  return await eventually(() => list.every((socket) => socket.closed), limitMs)
}

/** The server's side of every connection it accepts, for as long as each one is open. */
export function trackServerSockets (server: Server, event: 'connection' | 'secureConnection' = 'connection'): Set<Socket> {
  const open = new Set<Socket>()
  server.on(event, (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
  })
  return open
}

/**
 * Polls `condition` every 5 ms until it holds or `limitMs` has passed (a generous bound against
 * a hang, not a measurement), and returns its last value.
 */
export async function eventually (condition: () => boolean, limitMs = 10_000): Promise<boolean> {
  const giveUp = Date.now() + limitMs
  while (!condition()) {
    if (Date.now() > giveUp) return false
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return true
}

/** Sends `text` and resolves with the reply, or with a note when the connection closed instead. */
export function echo (ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    if (ws.readyState !== WebSocket.OPEN) {
      resolve('closed before the echo')
      return
    }
    const onClose = (): void => { resolve('closed before the echo') }
    ws.once('close', onClose)
    ws.once('message', (data: Buffer) => { ws.off('close', onClose); resolve(data.toString()) })
    ws.send(text)
  })
}

/** Makes a GET with `agent` (HTTP or HTTPS, any certificate) and resolves with the body and whether the agent reused a socket. */
export function get (url: string, agent: Agent): Promise<{ body: string, reused: boolean }> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send(url, { agent, rejectUnauthorized: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ body, reused: req.reusedSocket }))
    })
    req.on('error', reject)
    req.end()
  })
}
