// Helpers for the fastify-wsconn plugin tests: a listening app, raw HTTP exchanges on a socket,
// a `ws` client that reports refusals, and a log collector.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'

/** One parsed log line of pino. */
export interface LogEntry {
  level: number
  msg: string
  err?: { type?: string, message?: string, code?: string, [key: string]: unknown }
  [key: string]: unknown
}

/** Pino level numbers. */
export const LEVEL = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const

/** A Fastify `logger` option that records every line at every level in `entries`. */
export function collectLogs (): { logger: { level: string, stream: { write: (line: string) => void } }, entries: LogEntry[], waitFor: (match: (entry: LogEntry) => boolean) => Promise<LogEntry> } {
  const entries: LogEntry[] = []
  const waiters: Array<{ match: (entry: LogEntry) => boolean, resolve: (entry: LogEntry) => void }> = []
  const stream = {
    write (line: string): void {
      const entry = JSON.parse(line) as LogEntry
      entries.push(entry)
      for (const waiter of waiters.splice(0)) {
        if (waiter.match(entry)) waiter.resolve(entry)
        else waiters.push(waiter)
      }
    }
  }
  const waitFor = (match: (entry: LogEntry) => boolean): Promise<LogEntry> => {
    const found = entries.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve) => { waiters.push({ match, resolve }) })
  }
  return { logger: { level: 'trace', stream }, entries, waitFor }
}

/** Listens on a free loopback port and returns it; the caller closes the app. */
export async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

/** A complete HTTP response read from a raw socket, which the server then closed. */
export interface RawResponse {
  status: number
  statusLine: string
  /** Header names in lower case; repeated headers joined with ', '. */
  headers: Record<string, string>
  body: string
  /** Every byte the server sent, as latin1 text. */
  raw: string
}

/** The request headers of a valid WebSocket upgrade (a fresh key each call), plus `extra`. */
export function upgradeHeaders (extra: Record<string, string> = {}): Record<string, string> {
  return {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    ...extra
  }
}

/**
 * Sends one raw HTTP/1.1 request and resolves with everything the server wrote once the server
 * has closed the connection (so a resolved promise proves the socket was closed by the server).
 */
export function rawRequest (port: number, path: string, headers: Record<string, string>, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      socket.end()
      const raw = Buffer.concat(chunks).toString('latin1')
      resolve(parseResponse(raw))
    })
    let request = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`
    for (const [name, value] of Object.entries(headers)) request += `${name}: ${value}\r\n`
    socket.write(request + '\r\n')
  })
}

/** Parses the head and body of a raw HTTP response. */
export function parseResponse (raw: string): RawResponse {
  const end = raw.indexOf('\r\n\r\n')
  const head = end === -1 ? raw : raw.slice(0, end)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return {
    status: Number(statusLine.split(' ')[1]),
    statusLine,
    headers,
    body: end === -1 ? '' : raw.slice(end + 4),
    raw
  }
}

/** What a `ws` client saw instead of a 101. */
export interface Refusal {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** Opens a `ws` client; resolves once open, or rejects with a Refusal (or the network error). */
/** Resolves with the refusal a handshake promise rejects with; fails when the connection was accepted. */
export async function refusal (promise: Promise<unknown>): Promise<Refusal> {
  try {
    await promise
  } catch (err) {
    return err as Refusal
  }
  throw new Error('the connection was accepted')
}

export function openWs (url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options)
    // Messages may arrive in the same packet as the 101, before anyone could listen: queue them.
    trackMessages(ws)
    ws.on('open', () => resolve(ws))
    ws.on('error', reject)
    ws.on('unexpected-response', (_request, response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => {
        reject(Object.assign(new Error(`refused with ${response.statusCode}`), { status: response.statusCode, headers: response.headers, body }))
      })
    })
  })
}

/** Resolves with the code and reason of the close the `ws` client sees. */
export function closeOf (ws: WebSocket): Promise<{ code: number, reason: string }> {
  return new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
}

interface Inbox { queue: string[], waiters: Array<(text: string) => void> }
const inboxes = new WeakMap<WebSocket, Inbox>()

function trackMessages (ws: WebSocket): void {
  const inbox: Inbox = { queue: [], waiters: [] }
  inboxes.set(ws, inbox)
  ws.on('message', (data) => {
    const text = data.toString()
    const waiter = inbox.waiters.shift()
    if (waiter !== undefined) waiter(text)
    else inbox.queue.push(text)
  })
}

/** Resolves with the next text message a client from `openWs` receives (none is ever missed). */
export function messageOf (ws: WebSocket): Promise<string> {
  const inbox = inboxes.get(ws)!
  const queued = inbox.queue.shift()
  if (queued !== undefined) return Promise.resolve(queued)
  return new Promise((resolve) => { inbox.waiters.push(resolve) })
}
