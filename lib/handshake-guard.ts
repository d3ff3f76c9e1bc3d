import type { IncomingMessage, Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { MAX_TIMER_MS, checkMilliseconds } from './option-checks.js'

/** Default of `HandshakeGuardOptions.headersTimeout`, in milliseconds. */
export const DEFAULT_HEADERS_TIMEOUT = 10_000

/** Settings of `guardHandshakes`. */
export interface HandshakeGuardOptions {
  /**
   * Milliseconds a new connection has to deliver the complete headers of its first request (an
   * upgrade or a plain request); one that has not is destroyed. On an HTTPS server the TLS
   * handshake gets this long too, and the headers as long again once it has finished. The
   * server's own `headersTimeout` is lowered to this value when it is larger. 0 disables the
   * guard. Default 10000.
   */
  headersTimeout?: number
}

/** Anything `guardHandshakes` accepts: an HTTP or HTTPS server of node:http / node:https. */
export type GuardedServer = HttpServer | HttpsServer

// Node emits these instead of 'request' for some requests, but only when someone listens: a
// listener of ours alone would change how Node answers them (an Upgrade header would no longer be
// ignored, say), so the guard listens to each one only while the application does.
const ALTERNATE_REQUEST_EVENTS: ReadonlySet<unknown> = new Set(['upgrade', 'connect', 'checkContinue', 'checkExpectation'])
/** The listeners guards add to a server, which handle no request themselves. */
const guardListeners = new WeakSet<object>()

/**
 * Reports whether `listener` is one a handshake guard added to a server: code that looks for
 * another 'upgrade' listener to leave a request to must not count it.
 */
export function isGuardListener (listener: unknown): boolean {
  return guardListeners.has(listener as object)
}

/** The addresses of a raw TLS connection, kept on its socket while its TLS handshake runs. */
const kAddresses = Symbol('fastify-wsconn.guardedAddresses')

type RawTlsSocket = Socket & { [kAddresses]?: string }

/**
 * Bounds the time a connection may stall before its first request (slowloris): every connection
 * that `server` accepts from now on, and that has not delivered the complete headers of its first
 * request within `headersTimeout` (10 s by default), is destroyed, whatever it sent so far; on an
 * HTTPS server a TLS handshake that does not finish within the bound is ended the same way. Later
 * requests on a keep-alive connection are bounded by the server's `headersTimeout`, which is lowered
 * to the same value when larger (Node checks it every `connectionsCheckingInterval`, 30 s by
 * default). The fastify-wsconn plugin calls this on its server; call it yourself when an `Upgrader`
 * serves your own server. Returns a function that stops the guard (connections it watched stay as
 * they are) and restores the server's `headersTimeout`.
 */
export function guardHandshakes (server: GuardedServer, options: HandshakeGuardOptions = {}): () => void {
  if (server === null || typeof server !== 'object' || typeof server.on !== 'function') {
    throw new TypeError('guardHandshakes: server must be a node:http or node:https server')
  }
  const timeout = checkMilliseconds('headersTimeout', options.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT)
  if (timeout === 0) return () => {}
  const guard = new HandshakeGuard(server, timeout)
  return () => { guard.stop() }
}

/**
 * The connections of one server that have yet to deliver their first request headers, each with
 * its deadline. Every connection gets the same bound, so deadlines grow in insertion order: the
 * one timer waits for the earliest and a sweep stops at the first connection still in time.
 */
class HandshakeGuard {
  readonly #server: GuardedServer
  readonly #timeout: number
  /** How late a sweep may run, so a burst of connections shares one wake-up. */
  readonly #slack: number
  readonly #pending = new Map<Duplex, number>()
  /** On a TLS server: each raw socket still in its TLS handshake, by its addresses. */
  readonly #handshaking = new Map<string, Socket>()
  readonly #tls: boolean
  readonly #following = new Set<string>()
  readonly #savedHeadersTimeout: number | undefined
  readonly #onSocketClose: (this: Duplex) => void
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor (server: GuardedServer, timeout: number) {
    this.#server = server
    this.#timeout = timeout
    this.#slack = Math.min(1000, Math.ceil(timeout / 10))
    this.#tls = server instanceof TlsServer
    const guard = this
    // One function for every socket: `this` is the socket that closed.
    this.#onSocketClose = function (this: Duplex) { guard.#forget(this) }
    guardListeners.add(this.#onRequest)
    if (server.headersTimeout > timeout) {
      this.#savedHeadersTimeout = server.headersTimeout
      server.headersTimeout = timeout
    }
    server.on('connection', this.#onConnection)
    if (this.#tls) server.on('secureConnection', this.#onSecureConnection)
    server.on('request', this.#onRequest)
    for (const event of ALTERNATE_REQUEST_EVENTS as ReadonlySet<string>) {
      if (server.listenerCount(event) > 0) this.#follow(event)
    }
    server.on('newListener', this.#onNewListener)
    server.on('removeListener', this.#onRemoveListener)
  }

  stop (): void {
    if (this.#stopped) return
    this.#stopped = true
    const server = this.#server
    server.off('connection', this.#onConnection)
    server.off('secureConnection', this.#onSecureConnection)
    server.off('request', this.#onRequest)
    server.off('newListener', this.#onNewListener)
    server.off('removeListener', this.#onRemoveListener)
    for (const event of this.#following) server.off(event, this.#onRequest)
    this.#following.clear()
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (const socket of this.#pending.keys()) socket.off('close', this.#onSocketClose)
    this.#pending.clear()
    this.#handshaking.clear()
    if (this.#savedHeadersTimeout !== undefined && server.headersTimeout === this.#timeout) {
      server.headersTimeout = this.#savedHeadersTimeout
    }
  }

  #track (socket: Duplex): void {
    this.#pending.set(socket, performance.now() + this.#timeout)
    socket.on('close', this.#onSocketClose)
    if (this.#timer === undefined) this.#arm()
  }

  #forget (socket: Duplex): void {
    if (!this.#pending.delete(socket)) return
    socket.off('close', this.#onSocketClose)
    const addresses = (socket as RawTlsSocket)[kAddresses]
    if (addresses !== undefined && this.#handshaking.get(addresses) === socket) this.#handshaking.delete(addresses)
  }

  /** Sets the timer for the earliest deadline; with nothing pending, no timer is left. */
  #arm (): void {
    this.#timer = undefined
    const first = this.#pending.values().next()
    if (first.done === true) return
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, first.value - performance.now()) + this.#slack)
    this.#timer = setTimeout(this.#sweep, delay).unref()
  }

  readonly #sweep = (): void => {
    const now = performance.now()
    for (const [socket, deadline] of this.#pending) {
      if (deadline > now) break
      this.#forget(socket)
      socket.destroy()
    }
    this.#arm()
  }

  readonly #onConnection = (socket: Duplex): void => {
    if (this.#tls) {
      // The TLS socket that 'request' will carry is not reachable from the raw one; its
      // addresses (the same on both) find this raw socket again once the handshake is done.
      const addresses = addressesOf(socket as Socket)
      if (addresses === undefined) return
      ;(socket as RawTlsSocket)[kAddresses] = addresses
      this.#handshaking.set(addresses, socket as Socket)
    }
    this.#track(socket)
  }

  readonly #onSecureConnection = (socket: Socket): void => {
    const addresses = addressesOf(socket)
    if (addresses !== undefined) {
      const raw = this.#handshaking.get(addresses)
      if (raw !== undefined) this.#forget(raw)
    }
    // An HTTP/2 connection (ALPN h2, on an HTTP/2 server) carries its requests as streams whose
    // requests hold no socket this guard could find; the HTTP/2 server bounds its sessions itself.
    if ((socket as TLSSocket).alpnProtocol === 'h2') return
    this.#track(socket)
  }

  readonly #onRequest = (req: IncomingMessage): void => {
    this.#forget(req.socket)
  }

  #follow (event: string): void {
    this.#following.add(event)
    this.#server.on(event, this.#onRequest)
  }

  readonly #onNewListener = (event: string, listener: unknown): void => {
    if (listener !== this.#onRequest && ALTERNATE_REQUEST_EVENTS.has(event) && !this.#following.has(event)) this.#follow(event)
  }

  readonly #onRemoveListener = (event: string, listener: unknown): void => {
    if (!this.#following.has(event)) return
    if (listener === this.#onRequest) {
      // Someone removed every listener, ours included.
      this.#following.delete(event)
    } else if (this.#server.listenerCount(event) === 1) {
      this.#following.delete(event)
      this.#server.off(event, this.#onRequest)
    }
  }
}

/** The local and remote addresses of a TCP connection; undefined when it has none (a Unix socket, or already closed). */
function addressesOf (socket: Socket): string | undefined {
  const remote = socket.remoteAddress
  if (remote === undefined) return undefined
  return `${remote} ${String(socket.remotePort)} ${String(socket.localAddress)} ${String(socket.localPort)}`
}
