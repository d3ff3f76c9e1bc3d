import type { IncomingHttpHeaders } from 'node:http'
import type { Http2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { PerMessageDeflate } from '../deflate/codec.js'
import type { AgreedParams } from '../deflate/negotiation.js'
import { checkLevel, type PerMessageDeflateOptions } from '../deflate/options.js'
import { resolveConnOptions, type ConnOptions } from '../options.js'
import { PreparedMessage } from '../prepared-message.js'
import {
  BinaryMessage, CloseMessage, PingMessage, PongMessage, TextMessage,
  type ControlMessageType, type DataMessageType, type MessageType
} from '../protocol/constants.js'
import { CloseError, UsageError, WriteClosedError, stackless } from '../protocol/errors.js'
import type { Hub, PublishData, PublishOptions, PublishResult } from '../hub/hub.js'
import { catchUpWithHub } from '../hub/catch-up.js'
import { BAD_PAYLOAD, payloadLength, toPayload, type Payload } from '../protocol/framing.js'
import { noop, rejected } from '../settle.js'
import { ConnClosing } from './close.js'
import { readJSON, writeJSON, type JsonCodec } from './json.js'
import type { MessageReader } from './message-reader.js'
import type { MessageWriter } from './message-writer.js'
import { ConnReader, ReadKind, type CloseHandler, type ControlHandler, type Message, type MessageHandler, type ReadOptions } from './read.js'
import { Admission, ConnWriter, controlPayload } from './write.js'

export type { CloseHandler, ControlHandler, Message, MessageHandler, ReadOptions } from './read.js'
export type { JsonCodec } from './json.js'

/**
 * What code built on a Conn (the plugin) gives it when it is made, instead of changing it from
 * outside later: all are fixed for the connection's life. The Conn keeps the object itself, so
 * connections given the same one share it.
 */
export interface ConnHooks {
  /** How `readJSON`/`writeJSON` turn messages into values and back; plain JSON when absent. */
  json?: JsonCodec
  /** Sees every pong (and its connection) before the application's pong handler, which stays the application's to set. */
  pongObserver?: (conn: Conn, data: Buffer) => void
  /**
   * Called once with the connection when its socket has closed, before `closed` resolves: a
   * shared function tracks connections without the `closed` promise each would otherwise make.
   */
  closeObserver?: (conn: Conn) => void
}

/** How a connection came to be; built by `Upgrader` and `Dialer`. */
export interface ConnInit {
  hooks?: ConnHooks
  isServer: boolean
  /** Bytes that arrived after the HTTP handshake; parsed before anything else. */
  head?: Buffer
  /** The negotiated subprotocol, '' for none. */
  subprotocol?: string
  /** The negotiated Sec-WebSocket-Extensions value, '' for none. */
  extensions?: string
  /** Client side: the server's 101 response. */
  response?: { statusCode: number, headers: IncomingHttpHeaders }
  options?: ConnOptions
  /** permessage-deflate as negotiated by the handshake; absent when it was not. */
  compression?: { params: AgreedParams, options?: PerMessageDeflateOptions }
  /** The hub whose topics `subscribe()` joins; absent when the connection has none. */
  hub?: Hub
}

interface HandshakeAgreement {
  readonly subprotocol: string
  readonly extensions: string
  readonly response: { statusCode: number, headers: IncomingHttpHeaders } | undefined
}

const NOTHING_AGREED: HandshakeAgreement = Object.freeze({ subprotocol: '', extensions: '', response: undefined })

/** Where a socket keeps its connection, so one set of listener functions serves every socket. */
const kConn = Symbol('fastify-wsconn.conn')
type ConnSocket = Duplex & { [kConn]: Conn }
let offerToConn!: (conn: Conn, message: PreparedMessage) => Admission

/**
 * Offers a published message to `conn` under its slow-consumer limit, closing it when it is over
 * the limit with the `'close'` policy; for the Hub, which counts the outcomes.
 */
export function offerPublished (conn: Conn, message: PreparedMessage): Admission {
  return offerToConn(conn, message)
}

/**
 * A WebSocket connection (RFC 6455) over a socket, with gorilla/websocket's API in Promise form.
 * Reads and writes may be called from any number of async tasks: reads are served in call order,
 * writes are queued so frames never interleave, and control frames (ping, pong, close) are
 * answered as they arrive even when nobody reads.
 */
export class Conn implements AsyncIterable<Message> {
  // An idle connection is kept small (servers hold tens of thousands): no closures of its own,
  // queues linked through their items, flags packed, rarely used state made on demand. Each
  // concern owns its state: the read side (read.ts), the write side (write.ts), closing (close.ts).
  readonly #reader: ConnReader
  readonly #writer: ConnWriter
  readonly #closing: ConnClosing
  /** What the handshake agreed on; one shared object when it agreed on nothing (no subprotocol, no extension, a server). */
  readonly #agreed: HandshakeAgreement
  /** What code built on the Conn gave it (see ConnHooks); often one object for many connections. */
  readonly #hooks: ConnHooks | undefined
  readonly #hub: Hub | undefined

  /** The subprotocol the handshake agreed on, '' for none. */
  get subprotocol (): string {
    return this.#agreed.subprotocol
  }

  /** The negotiated Sec-WebSocket-Extensions value, '' for none. */
  get extensions (): string {
    return this.#agreed.extensions
  }

  /** Client side: the server's 101 response; undefined on the server. */
  get response (): { statusCode: number, headers: IncomingHttpHeaders } | undefined {
    return this.#agreed.response
  }

  /** Whether this is the server end (it expects masked frames and sends unmasked ones). */
  get isServer (): boolean {
    return this.#writer.isServer
  }

  static {
    offerToConn = (conn, message) => conn.#offer(message, message.data.length)
  }

  constructor (socket: Duplex, init: ConnInit) {
    const subprotocol = init.subprotocol ?? ''
    const extensions = init.extensions ?? ''
    this.#agreed = subprotocol === '' && extensions === '' && init.response === undefined
      ? NOTHING_AGREED
      : { subprotocol, extensions, response: init.response }
    const options = resolveConnOptions(init.options)
    this.#hub = init.hub
    const deflate = init.compression === undefined
      ? undefined
      : new PerMessageDeflate(init.compression.params, init.isServer, {
        ...init.compression.options,
        readLimit: () => this.#reader.parser.options.readLimit
      })
    this.#writer = new ConnWriter(socket, init.isServer, options, deflate)
    this.#closing = new ConnClosing(this.#writer)
    this.#reader = new ConnReader(socket, init.isServer, options, deflate, this.#closing)
    this.#closing.reader = this.#reader
    const hooks = init.hooks
    this.#hooks = hooks
    const observePong = hooks?.pongObserver
    if (observePong !== undefined) this.#reader.settings.pongObserver = (data) => { observePong(this, data) }
    const netSocket = socket as Partial<Socket>
    if (typeof netSocket.setNoDelay === 'function') netSocket.setNoDelay(true)
    if (typeof netSocket.setTimeout === 'function') netSocket.setTimeout(0)
    ;(socket as ConnSocket)[kConn] = this
    socket.on('data', Conn.#onSocketData)
    socket.on('end', Conn.#onSocketEnd)
    socket.on('error', Conn.#onSocketError)
    socket.on('close', Conn.#onSocketClose)
    socket.on('drain', Conn.#onSocketDrain)
    // Once end() was called Node reports the last flush with 'finish', never with 'drain'.
    socket.on('finish', Conn.#onSocketDrain)
    if (init.head !== undefined && init.head.length > 0) this.#reader.parser.push(init.head)
    // A socket that ended or closed before the Conn listened never reports it again.
    if (socket.destroyed) this.#onClose()
    else if (socket.readableEnded) Conn.#onSocketEnd.call(socket as ConnSocket)
  }

  /** Resolves once the underlying socket has closed, however that happened. Never rejects. */
  get closed (): Promise<void> {
    return this.#closing.closed
  }

  // ---- Addresses and state -------------------------------------------------------------------

  /** The underlying socket. Reading or writing it directly corrupts the WebSocket stream. */
  get socket (): Duplex {
    return this.#writer.socket
  }

  /** The local IP address: the TCP socket's, or over HTTP/2 that of the session's socket. */
  get localAddress (): string | undefined {
    return addressOf(this.#writer.socket, 'localAddress')
  }

  /** The local port: the TCP socket's, or over HTTP/2 that of the session's socket. */
  get localPort (): number | undefined {
    return addressOf(this.#writer.socket, 'localPort')
  }

  /** The peer's IP address: the TCP socket's, or over HTTP/2 that of the session's socket. */
  get remoteAddress (): string | undefined {
    return addressOf(this.#writer.socket, 'remoteAddress')
  }

  /** The peer's port: the TCP socket's, or over HTTP/2 that of the session's socket. */
  get remotePort (): number | undefined {
    return addressOf(this.#writer.socket, 'remotePort')
  }

  /**
   * Bytes accepted for writing and not yet written to the kernel: messages queued behind others
   * plus what the socket buffers. What `maxBufferedAmount` limits.
   */
  get bufferedAmount (): number {
    return this.#writer.bufferedAmount
  }

  /** How many `send()` calls and publishes were refused by the slow-consumer limit. */
  get droppedMessages (): number {
    return this.#writer.droppedMessages
  }

  /** The read limit in bytes (0 = none). */
  get readLimit (): number {
    return this.#reader.parser.options.readLimit
  }

  /** The fragment size of `nextWriter` messages. */
  get writeBufferSize (): number {
    return this.#writer.options.writeBufferSize
  }

  /** Bytes of unread messages that pause reading from the socket when exceeded. */
  get readBufferSize (): number {
    return this.#writer.options.readBufferSize
  }

  /** Sets the largest message the connection accepts; a bigger one closes it with 1009. 0 = none. */
  setReadLimit (limit: number): void {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`websocket: read limit must be an integer >= 0, got ${limit}`)
    this.#reader.setReadLimit(limit)
  }

  // ---- Reading --------------------------------------------------------------------------------

  /**
   * Resolves with the next data message, whole. Messages are delivered in order, one per call,
   * also to concurrent callers. After a failure (a close frame from the peer included) every read
   * rejects with the same error.
   */
  readMessage (options?: ReadOptions): Promise<Message> {
    return this.#reader.enqueue(ReadKind.Message, options?.signal)
  }

  /**
   * Resolves with a reader that streams the next data message as it arrives, so a message far
   * larger than memory can be consumed. Starting another read discards what the previous reader
   * left unread, as in gorilla.
   */
  nextReader (options?: ReadOptions): Promise<MessageReader> {
    return this.#reader.enqueue(ReadKind.Stream, options?.signal)
  }

  /**
   * Reads the next message and parses it as JSON (or through the plugin's schema); a parse error
   * rejects but leaves the connection usable.
   */
  readJSON<T = unknown> (options?: ReadOptions): Promise<T> {
    return readJSON<T>(this, this.#hooks?.json, options)
  }

  /**
   * Calls `handler` with every data message, whole and in order, without a promise per message:
   * the event-style alternative to `for await`. A promise the handler returns holds the next
   * message back until it settles. Resolves, after the last call settled, when the peer closes
   * with 1000, 1001 or no status; rejects with any other failure. If the handler throws or
   * rejects, no more messages are delivered, the connection closes with 1011 and the result
   * rejects with that error. While the handler is set, reads reject with a UsageError; aborting
   * `signal` takes the messages back for reads (the result rejects with its reason). The result
   * may be ignored: it never becomes an unhandled rejection.
   */
  onMessage (handler: MessageHandler, options?: ReadOptions): Promise<void> {
    return this.#reader.handle(handler, options?.signal, () => { this.close(1011, 'message handler failed').catch(noop) })
  }

  /** Iterates over messages until the peer closes with 1000, 1001 or no status; other failures throw. */
  [Symbol.asyncIterator] (): AsyncIterator<Message> {
    return new MessageIterator(this.#reader)
  }

  /**
   * Fails reads at `deadline` (a Date or epoch milliseconds; null clears it). A read that fails
   * this way breaks the read side for good, as in gorilla; use a read's `signal` for a soft timeout.
   */
  setReadDeadline (deadline: Date | number | null): void {
    this.#reader.setDeadline(deadline === null ? null : +deadline)
  }

  // ---- Control handlers ----------------------------------------------------------------------

  /** Replaces what happens when a close frame arrives; null restores the default (echo the code, then end TCP). */
  setCloseHandler (handler: CloseHandler | null): void {
    this.#reader.settings.close = handler ?? undefined
  }

  /** Replaces what happens when a ping arrives; null restores the default (answer with a pong of the same payload). */
  setPingHandler (handler: ControlHandler | null): void {
    this.#reader.settings.ping = handler ?? undefined
  }

  /** Replaces what happens when a pong arrives; null restores the default (nothing). */
  setPongHandler (handler: ControlHandler | null): void {
    this.#reader.settings.pong = handler ?? undefined
  }

  // ---- Writing --------------------------------------------------------------------------------

  /**
   * Sends a whole message as one frame. Resolves once the socket took the bytes, after a 'drain'
   * when the socket was over its high-water mark. Calls made while a `nextWriter` is open wait
   * for it to close, so frames of different messages never interleave. The promise may be
   * ignored: a write nobody awaits never becomes an unhandled rejection.
   */
  writeMessage (type: MessageType, data: Payload): Promise<void> {
    if (type === TextMessage || type === BinaryMessage) {
      this.#publishedFirst()
      return this.#writer.writeMessage(type, data)
    }
    if (type === CloseMessage || type === PingMessage || type === PongMessage) return this.writeControl(type, data)
    return rejected(new UsageError(`bad message type ${String(type)}`))
  }

  /**
   * Sends `value` as a JSON text message (no trailing newline, unlike gorilla's encoder), or as the
   * plugin's schema serializer writes it.
   */
  writeJSON (value: unknown): Promise<void> {
    return writeJSON(this, this.#hooks?.json, value)
  }

  /**
   * Sends a message without waiting, as `ws` does: a string as a text message, bytes (Buffer,
   * typed array, ArrayBuffer) as a binary one, a PreparedMessage as its own type. Returns true
   * when the message was accepted, false when the connection is closing or over its
   * `maxBufferedAmount` (then, by `slowConsumerPolicy`, dropped or the connection closed with
   * 1008). An accepted message is delivered before any later close frame.
   */
  send (data: Payload | PreparedMessage): boolean {
    this.#publishedFirst()
    if (data instanceof PreparedMessage) return this.#offer(data, data.data.length) === Admission.Accepted
    const payload = toPayload(data)
    if (payload === undefined) throw new UsageError(BAD_PAYLOAD)
    return this.#offer(payload, payloadLength(payload)) === Admission.Accepted
  }

  #offer (message: Buffer | string | PreparedMessage, size: number): Admission {
    const writer = this.#writer
    const admission = writer.admit(size)
    if (admission === Admission.Accepted) {
      // The promises are marked handled by the writer: a failure surfaces on the connection itself.
      if (message instanceof PreparedMessage) writer.writePrepared(message)
      else writer.writeMessage(typeof message === 'string' ? TextMessage : BinaryMessage, message)
    } else if (admission === Admission.OverLimit) {
      this.close(1008, `slow consumer: more than ${this.#writer.options.maxBufferedAmount} bytes waiting to be written`)
    }
    return admission
  }

  /** Sends a message framed once by a PreparedMessage; the same bytes serve every server connection. */
  writePreparedMessage (message: PreparedMessage): Promise<void> {
    if (message.type >= CloseMessage) return this.writeControl(message.type as ControlMessageType, message.data)
    this.#publishedFirst()
    return this.#writer.writePrepared(message)
  }

  /**
   * Gives the hub the chance to offer this connection the publishes it has not yet brought to it
   * (a fan-out to many subscribers takes several turns), so they go out before what is written now.
   */
  #publishedFirst (): void {
    if (this.#hub !== undefined) catchUpWithHub(this.#hub, this)
  }

  /**
   * Resolves with a writer for one message of `type`: `write(chunk)` sends fragments of at most
   * `writeBufferSize` bytes and `close()` sends the final frame. Other writes wait until it closes;
   * control frames still go out between its fragments.
   */
  nextWriter (type: DataMessageType): Promise<MessageWriter> {
    if (type !== TextMessage && type !== BinaryMessage) return rejected(new UsageError(`nextWriter needs a data message type, got ${String(type)}`))
    this.#publishedFirst()
    return this.#writer.nextWriter(type)
  }

  /**
   * Sends a close, ping or pong frame (payload of at most 125 bytes) at once, between the frames of
   * any message being written. A `deadline` already past rejects with a TimeoutError without writing;
   * otherwise the frame must be flushed by then or the connection is torn down.
   */
  writeControl (type: ControlMessageType, data: Payload = Buffer.alloc(0), deadline?: Date | number): Promise<void> {
    if (type !== CloseMessage && type !== PingMessage && type !== PongMessage) {
      return rejected(new UsageError(`bad control message type ${String(type)}`))
    }
    const payload = controlPayload(data)
    if (typeof payload === 'string') return rejected(new UsageError(payload))
    if (type === CloseMessage) this.#publishedFirst()
    const writer = this.#writer
    const closeWasSent = writer.closeSent
    const written = writer.writeControl(type, payload, deadline === undefined ? undefined : +deadline)
    if (type === CloseMessage && !closeWasSent && writer.closeSent) this.#closing.closeSent()
    return written
  }

  /** Every later write must be flushed by `deadline` (a Date or epoch ms; null clears), or the connection is torn down. */
  setWriteDeadline (deadline: Date | number | null): void {
    this.#writer.setDeadline(deadline === null ? 0 : +deadline)
  }

  /** Turns compression of later messages on or off; it has no effect when none was negotiated. */
  enableWriteCompression (enable: boolean): void {
    this.#writer.enableCompression(enable)
  }

  /** Sets the zlib level (0-9) of messages compressed from now on; throws a RangeError otherwise. */
  setCompressionLevel (level: number): void {
    checkLevel(level)
    this.#writer.deflate?.setLevel(level)
  }

  /** Whether permessage-deflate was negotiated for this connection. */
  get compressionNegotiated (): boolean {
    return this.#writer.deflate !== undefined
  }

  // ---- Topics ----------------------------------------------------------------------------------

  /**
   * Joins `topic` on the connection's hub (the plugin's, or an Upgrader's `hub` option), so the
   * hub's publishes to it reach this connection; returns false when it was already subscribed.
   * A closed connection leaves every topic by itself.
   */
  subscribe (topic: string): boolean {
    return this.#topicHub().subscribe(this, topic)
  }

  /** Leaves `topic`; returns false when the connection was not subscribed to it. */
  unsubscribe (topic: string): boolean {
    return this.#topicHub().unsubscribe(this, topic)
  }

  /** Whether the connection is subscribed to `topic`. */
  isSubscribed (topic: string): boolean {
    return this.#hub?.isSubscribed(this, topic) ?? false
  }

  /** The topics the connection is subscribed to. */
  get topics (): string[] {
    return this.#hub?.topicsOf(this) ?? []
  }

  /** Publishes on the connection's hub; see `Hub.publish` (`except: conn` leaves this connection out). */
  publish (topic: string, data: PublishData, options?: PublishOptions): Promise<PublishResult> {
    if (this.#hub === undefined) return rejected(noHub())
    return this.#hub.publish(topic, data, options)
  }

  /** Publishes `value` as JSON on the connection's hub, serialised once (by the route's `schema.outgoing` in the plugin). */
  publishJSON (topic: string, value: unknown): Promise<PublishResult> {
    if (this.#hub === undefined) return rejected(noHub())
    return this.#hub.publishJSON(topic, value, this.#hooks?.json?.encode)
  }

  #topicHub (): Hub {
    if (this.#hub === undefined) throw noHub()
    return this.#hub
  }

  // ---- Closing --------------------------------------------------------------------------------

  /**
   * Runs the closing handshake: after every message already accepted for writing, sends a close
   * frame with `code` and `reason`, waits for the peer's close frame and the end of TCP (a client
   * waits for the server to end it), and destroys the socket if that takes longer than
   * `closeTimeout`. Resolves when the socket is closed; never rejects. Later writes reject with
   * CloseSentError.
   */
  close (code = 1000, reason = ''): Promise<void> {
    this.#publishedFirst()
    return this.#closing.close(code, reason)
  }

  /** Destroys the socket at once, without a closing handshake (gorilla's `Close`). */
  terminate (): void {
    this.#writer.socket.destroy()
  }

  // ---- Socket events ----------------------------------------------------------------------------

  // One function per event for every socket: `this` is the socket, which knows its connection.
  static readonly #onSocketData = function (this: ConnSocket, chunk: Buffer): void {
    this[kConn].#reader.parser.push(chunk)
  }

  static readonly #onSocketEnd = function (this: ConnSocket): void {
    const conn = this[kConn]
    conn.#reader.inputEnded(undefined)
    conn.#closing.peerEnded()
  }

  static readonly #onSocketError = function (this: ConnSocket, error: Error): void {
    const conn = this[kConn]
    if (conn.#reader.error === undefined) conn.#reader.inputEnded(stackless(() => new CloseError(1006, error.message, { cause: error })))
    if (conn.#writer.error === undefined) conn.#writer.fail(stackless(() => new WriteClosedError(`socket error: ${error.message}`)))
  }

  static readonly #onSocketClose = function (this: ConnSocket): void {
    this[kConn].#onClose()
  }

  static readonly #onSocketDrain = function (this: ConnSocket): void {
    const conn = this[kConn]
    conn.#writer.drained()
    conn.#reader.drained()
  }

  #onClose (): void {
    const closing = this.#closing
    if (closing.isSocketClosed) return
    this.#reader.socketClosed()
    const writer = this.#writer
    writer.fail(writer.error ?? stackless(() => new WriteClosedError('connection closed')))
    writer.socketClosed()
    closing.socketClosed()
    this.#hooks?.closeObserver?.(this)
  }
}

/** One of a connection's addresses: its socket's, or over HTTP/2 that of the socket of the stream's session. */
function addressOf<K extends 'localAddress' | 'localPort' | 'remoteAddress' | 'remotePort'> (socket: Duplex, key: K): Socket[K] | undefined {
  const session = (socket as Partial<Http2Stream>).session
  if (session === undefined) return (socket as Partial<Socket>)[key]
  try {
    return session.socket[key]
  /* c8 ignore start: Node detaches a stream from its session before unbinding the session's socket,
     but a getter must never throw if that order ever changes (ERR_HTTP2_SOCKET_UNBOUND) */
  } catch {
    return undefined
  }
  /* c8 ignore stop */
}

function noHub (): UsageError {
  return new UsageError('this connection has no hub: give the Upgrader a hub option to use topics')
}

/** Iterates over messages: each `next()` is one read, resolved directly with its result. */
class MessageIterator implements AsyncIterator<Message> {
  readonly reader: ConnReader
  constructor (reader: ConnReader) {
    this.reader = reader
  }

  next (): Promise<IteratorResult<Message>> {
    return this.reader.enqueue(ReadKind.Iterate, undefined)
  }

  return (): Promise<IteratorResult<Message>> {
    return Promise.resolve({ value: undefined, done: true })
  }
}
