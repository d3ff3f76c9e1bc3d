import { createHash } from 'node:crypto'
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import { WEBSOCKET_GUID } from './protocol/constants.js'

/** A header value as Node's HTTP parser delivers it: absent, one line, or several lines. */
export type HeaderValue = string | string[] | undefined

/** Headers to write on a raw response; an array value becomes one header line per element. */
export type OutgoingHeaders = Record<string, string | number | string[]>

/** Milliseconds a refused socket may stay half-open, waiting for the peer's FIN, before it is destroyed. */
export const REFUSAL_LINGER_MS = 2000

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const CHALLENGE_KEY = /^[A-Za-z0-9+/]{22}==$/
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\x00-\x1f\x7f]/g
// Headers that writeHttpResponse always writes itself; callers cannot replace them.
const RESPONSE_OWNED = new Set(['connection', 'content-length', 'transfer-encoding'])

/**
 * Returns the Sec-WebSocket-Accept value for a Sec-WebSocket-Key: base64 of the SHA-1 of the key
 * followed by the RFC 6455 GUID, exactly as RFC 6455 §4.2.2 defines it.
 */
export function computeAcceptKey (key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID, 'latin1').digest('base64')
}

/**
 * Reports whether a comma-separated header (every line of it) contains `token`, compared
 * ASCII case-insensitively after trimming spaces and tabs; an absent header never does.
 */
export function tokenListContainsValue (header: HeaderValue, token: string): boolean {
  if (header === undefined) return false
  const wanted = asciiLower(token)
  const lines = Array.isArray(header) ? header : [header]
  for (const line of lines) {
    for (const item of line.split(',')) {
      if (equalsAsciiLowercase(item.trim(), wanted)) return true
    }
  }
  return false
}

/** Whether `value` equals `lower` (already lowercase) ignoring ASCII case, without building a string. */
function equalsAsciiLowercase (value: string, lower: string): boolean {
  if (value.length !== lower.length) return false
  for (let i = 0; i < value.length; i++) {
    let c = value.charCodeAt(i)
    if (c >= 0x41 && c <= 0x5a) c += 0x20
    if (c !== lower.charCodeAt(i)) return false
  }
  return true
}

/**
 * Reports whether a request asks for a WebSocket upgrade: its `Connection` header has the token
 * `upgrade` and its `Upgrade` header has the token `websocket` (gorilla's IsWebSocketUpgrade).
 */
export function isWebSocketUpgrade (req: { headers: IncomingHttpHeaders }): boolean {
  return tokenListContainsValue(req.headers.connection, 'upgrade') &&
    tokenListContainsValue(req.headers.upgrade, 'websocket')
}

/**
 * Reports whether `key` is a valid Sec-WebSocket-Key: exactly 24 characters of standard base64
 * (no URL-safe alphabet, no whitespace) that decode to exactly 16 bytes.
 */
export function isValidChallengeKey (key: HeaderValue): key is string {
  return typeof key === 'string' && CHALLENGE_KEY.test(key)
}

/**
 * Returns the subprotocols a client offered, in the client's order: every header line is split
 * on commas, each item trimmed, and empty items dropped; an absent header gives [].
 */
export function parseSubprotocols (headerValue: HeaderValue): string[] {
  if (headerValue === undefined) return []
  const lines = Array.isArray(headerValue) ? headerValue : [headerValue]
  const result: string[] = []
  for (const line of lines) {
    for (const item of line.split(',')) {
      const name = item.trim()
      if (name !== '') result.push(name)
    }
  }
  return result
}

/**
 * The default origin policy: true when there is no Origin header (not a browser), otherwise
 * whether the Origin, an http, https, ws or wss origin, names the host and port that the Host
 * header names. Hostnames compare as URLs normalise them (case-insensitive, IPv6 literals in
 * brackets in their short form) and ports with defaults filled in (http and ws 80, https and wss
 * 443), so `Origin: http://localhost` matches `Host: localhost:80` as well as `Host: localhost`.
 * Like gorilla's rule the scheme itself is not compared: an Origin and a Host with the same
 * explicit port match whatever the scheme. Over HTTP/2 `:authority` plays the part of Host.
 */
export function checkSameOrigin (req: { headers: IncomingHttpHeaders }): boolean {
  const origin = req.headers.origin
  if (origin === undefined) return true
  const from = parseOrigin(origin)
  const to = parseHostHeader(requestHost(req.headers))
  if (from === undefined || to === undefined || from.hostname !== to.hostname) return false
  // A Host without a port means the default port of the scheme the client connected with, which
  // the server cannot tell for sure (TLS often ends at a proxy that forwards wss as plain HTTP
  // with the Host unchanged). It is read as the default port of the Origin's scheme: `http://x`
  // and `https://x` both match `Host: x`, as they always did. An Origin on an explicit port that
  // is not its own default (`http://x:8080`, `https://x:80`) could only match by guessing the
  // other scheme, so it is refused; such a page can be allowed by name with checkOrigin.
  return (to.port ?? from.defaultPort) === from.port
}

/** Longest Origin or Host value quoted in full in a refusal; longer ones are cut (they are client input). */
const QUOTED_HEADER_MAX = 200

/**
 * Why an upgrade was refused with 403, naming the `checkOrigin` option and quoting the request's
 * Origin and Host (JSON-escaped, cut after 200 characters), so a log line says what to allow.
 */
export function originRefusalReason (headers: IncomingHttpHeaders, usedDefault: boolean): string {
  const quote = (value: string | undefined): string => value === undefined
    ? '(none)'
    : JSON.stringify(value.length > QUOTED_HEADER_MAX ? `${value.slice(0, QUOTED_HEADER_MAX)}...` : value)
  const policy = usedDefault ? 'checkOrigin (the default allows only the same origin)' : 'checkOrigin'
  return `request origin not allowed by ${policy}: Origin ${quote(headers.origin)}, Host ${quote(requestHost(headers))}`
}

/** The host a request was sent to: HTTP/2's `:authority` (RFC 9113 §8.3.1), else the Host header. */
export function requestHost (headers: IncomingHttpHeaders): string | undefined {
  const authority = headers[':authority']
  return typeof authority === 'string' ? authority : headers.host
}

/** Ports of the schemes an Origin may have for checkSameOrigin. */
const DEFAULT_PORTS = new Map([['http:', 80], ['ws:', 80], ['https:', 443], ['wss:', 443]])

/** The hostname and port (the default filled in) of an http(s)/ws(s) origin; undefined otherwise. */
function parseOrigin (origin: string): { hostname: string, port: number, defaultPort: number } | undefined {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return undefined
  }
  const defaultPort = DEFAULT_PORTS.get(url.protocol)
  if (defaultPort === undefined) return undefined
  return { hostname: url.hostname, port: url.port === '' ? defaultPort : Number(url.port), defaultPort }
}

// host [ ":" port ]: an IPv6 literal in brackets or a name without delimiters, then digits or nothing.
const HOST_HEADER = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]\\]+)(?::(\d*))?$/

/** The hostname (normalised as in a URL) and port (undefined when absent or empty) of a Host header. */
function parseHostHeader (host: string | undefined): { hostname: string, port: number | undefined } | undefined {
  const match = host === undefined ? null : HOST_HEADER.exec(host)
  if (match === null) return undefined
  let hostname: string
  try {
    hostname = new URL(`http://${match[1]!}`).hostname
  } catch {
    return undefined
  }
  const digits = match[2]
  const port = digits === undefined || digits === '' ? undefined : Number(digits)
  if (port !== undefined && port > 65535) return undefined
  return { hostname, port }
}

/** Reports whether `name` is a valid HTTP header field name (an RFC 9110 token). */
export function isValidHeaderName (name: string): boolean {
  return TOKEN.test(name)
}

/**
 * Returns `value` with every control character (CR, LF, NUL, other bytes below 0x20, and DEL)
 * replaced by a space, so it can never end a header line or start a new one.
 */
export function sanitizeHeaderValue (value: string | number): string {
  return String(value).replace(CONTROL_CHARS, ' ')
}

/**
 * Serialises header lines (`Name: value\r\n` each); values are sanitised, and a name that is not
 * a valid token throws a TypeError, so the result can never split the response.
 */
export function formatHeaderLines (headers: OutgoingHeaders): string {
  let out = ''
  for (const [name, value] of Object.entries(headers)) {
    if (!isValidHeaderName(name)) throw new TypeError(`websocket: invalid header name ${JSON.stringify(name)}`)
    const values = Array.isArray(value) ? value : [value]
    for (const v of values) out += `${name}: ${sanitizeHeaderValue(v)}\r\n`
  }
  return out
}

/**
 * Writes a complete HTTP/1.1 response (`Connection: close`, plain-text UTF-8 body with its
 * Content-Length, sanitised headers) on a raw socket and ends it without ever throwing; the socket
 * is destroyed once the peer closes, or after REFUSAL_LINGER_MS at the latest, so it never hangs.
 */
export function writeHttpResponse (socket: Duplex, status: number, headers: OutgoingHeaders = {}, body: string | Buffer = ''): void {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body
  const extra: OutgoingHeaders = {}
  let hasContentType = false
  for (const [name, value] of Object.entries(headers)) {
    const lower = asciiLower(name)
    if (RESPONSE_OWNED.has(lower) || !isValidHeaderName(name)) continue
    if (lower === 'content-type') hasContentType = true
    extra[name] = value
  }
  const reason = sanitizeHeaderValue(STATUS_CODES[status] ?? 'Unknown')
  const head = `HTTP/1.1 ${status} ${reason}\r\n` +
    'Connection: close\r\n' +
    (hasContentType ? '' : 'Content-Type: text/plain; charset=utf-8\r\n') +
    formatHeaderLines(extra) +
    `Content-Length: ${payload.length}\r\n\r\n`
  if (socket.destroyed) return
  socket.on('error', ignore)
  if (socket.writableEnded || !socket.writable) {
    socket.destroy()
    return
  }
  socket.end(Buffer.concat([Buffer.from(head, 'utf8'), payload]))
  endSocketSoon(socket)
}

/**
 * Makes sure a socket whose response has been written goes away: it is ended if it was not, its
 * input is drained so the peer's FIN is seen, and it is destroyed after REFUSAL_LINGER_MS at the latest.
 */
export function endSocketSoon (socket: Duplex, lingerMs = REFUSAL_LINGER_MS): void {
  if (socket.destroyed) return
  socket.on('error', ignore)
  if (!socket.writableEnded) socket.end()
  const timer = setTimeout(() => socket.destroy(), lingerMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  // Both directions ended → a net.Socket destroys itself; other streams are destroyed here.
  socket.once('end', () => { if (socket.writableFinished) socket.destroy() })
  socket.once('finish', () => { if (socket.readableEnded) socket.destroy() })
  socket.resume()
}

function asciiLower (s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32))
}

function ignore (): void {}
