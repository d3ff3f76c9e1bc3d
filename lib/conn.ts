import type { IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { InboundMessage, MessageReader, type ReaderOwner } from './inbound.js'
import { MessageWriter, type WriterOwner } from './message-writer.js'
import { resolveConnOptions, type ConnOptions, type ResolvedConnOptions } from './options.js'
import type { PreparedMessage } from './prepared-message.js'
import { formatCloseMessage, truncateUtf8 } from './protocol/close.js'
import {
  BinaryMessage, CloseMessage, MAX_CONTROL_PAYLOAD, PingMessage, PongMessage, TextMessage,
  type ControlMessageType, type DataMessageType, type MessageType
} from './protocol/constants.js'
import { CloseError, CloseSentError, ProtocolError, TimeoutError, UsageError, WriteClosedError, isCloseError, stackless } from './protocol/errors.js'
import { FrameParser, type FrameSink } from './protocol/parser.js'
import { noop, rejected } from './settle.js'
import { PerMessageDeflate, type MessageInflation } from './deflate/codec.js'
import type { AgreedParams } from './deflate/negotiation.js'
import { checkLevel, type PerMessageDeflateOptions } from './deflate/options.js'
import { BAD_PAYLOAD, MERGE_LIMIT, encodeFrame, encodeHeader, payloadLength, toPayload, type Payload } from './framing.js'

/** How a connection came to be; built by `Upgrader` and `Dialer`. */
export interface ConnInit {
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
}

/** One received data message. */
export interface Message {
  type: DataMessageType
  data: Buffer
}

/** Options of a single read. */
export interface ReadOptions {
  /** Aborting stops waiting for the message; the connection stays usable (unlike a read deadline). */
  signal?: AbortSignal
}

/** Called with the close code (1005 when none) and reason of a received close frame. */
export type CloseHandler = (code: number, text: string) => void | Promise<void>
/** Called with the payload of a received ping or pong. */
export type ControlHandler = (data: Buffer) => void | Promise<void>

const enum ReadKind {
  /** readMessage: resolves with a Message. */
  Message,
  /** nextReader: resolves with a MessageReader as soon as the message starts. */
  Stream,
  /** The async iterator: resolves with an IteratorResult, done at a normal close. */
  Iterate
}

interface PendingRead {
  kind: ReadKind
  resolve: (value: any) => void
  reject: (error: Error) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  next: PendingRead | undefined
}

interface QueuedWrite {
  /**
   * Writes and reports whether the socket took the bytes without backpressure (a promise of that
   * when compression comes first); undefined for a writer.
   */
  run: (() => boolean | Promise<boolean>) | undefined
  writer: MessageWriter | undefined
  resolve: (value: any) => void
  reject: (error: Error) => void
  next: QueuedWrite | undefined
}

/** State bits of a connection, packed so that an idle connection stays small. */
const enum Flag {
  CompressWrites = 1,
  /** The socket is paused because too many unread bytes wait. */
  Paused = 2,
  /** The socket is corked until the end of this tick. */
  Corked = 4,
  CloseSent = 8,
  CloseReceived = 16,
  /** close() or a failure started the closing handshake. */
  CloseStarted = 32,
  SocketClosed = 64,
  /** A compression for the write at the head of the queue is running; later writes wait. */
  Compressing = 128,
  /**
   * The socket delivers no more, but the parser holds input behind an inflation for a reader
   * that waits: the end of input is reported once that input is parsed.
   */
  InputEnded = 256,
  /** The zlib contexts were freed. */
  DeflateReleased = 512
}

/** Timers and deadlines: made on first use, since most connections never set one. */
interface ConnTimers {
  read: NodeJS.Timeout | undefined
  write: NodeJS.Timeout | undefined
  /** When the armed write timer fires (the soonest deadline of the waiting writes). */
  writeAt: number
  /** setWriteDeadline's value, epoch ms; 0 = none. */
  writeDeadline: number
  close: NodeJS.Timeout | undefined
}

interface ControlHandlers {
  close: CloseHandler | undefined
  ping: ControlHandler | undefined
  pong: ControlHandler | undefined
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (error: Error) => void
}

/**
 * How `readJSON` and `writeJSON` turn messages into values and back, when something other than
 * plain JSON.parse/JSON.stringify is wanted (the plugin's schema validation and serializers).
 */
export interface JsonCodec {
  /** The value `readJSON` resolves with for a received message; may throw or reject. */
  decode (conn: Conn, data: Buffer): unknown
  /** The text `writeJSON` sends for `value`, or undefined to use JSON.stringify; may throw. */
  encode: ((value: unknown) => string) | undefined
}

const RESOLVED = Promise.resolve()
const NORMAL_ENDS = [1000, 1001, 1005]
/** Where a socket keeps its connection, so one set of listener functions serves every socket. */
const kConn = Symbol('fastify-wsconn.conn')
type ConnSocket = Duplex & { [kConn]: Conn }
/** Connections corked in this tick, uncorked together when it ends; see Conn's #write. */
let tickEndScheduled = false
const corkedThisTick: Conn[] = []
let setJsonCodec!: (conn: Conn, codec: JsonCodec | undefined) => void

/** Makes `readJSON`/`writeJSON` of `conn` go through `codec` (undefined restores plain JSON). */
export function useJsonCodec (conn: Conn, codec: JsonCodec | undefined): void {
  setJsonCodec(conn, codec)
}

/**
 * A WebSocket connection (RFC 6455) over a socket, with gorilla/websocket's API in Promise form.
 * Reads and writes may be called from any number of async tasks: reads are served in call order,
 * writes are queued so frames never interleave, and control frames (ping, pong, close) are
 * answered as they arrive even when nobody reads.
 */
export class Conn implements AsyncIterable<Message> {
  /** The subprotocol the handshake agreed on, '' for none. */
  readonly subprotocol: string
  /** The negotiated Sec-WebSocket-Extensions value, '' for none. */
  readonly extensions: string
  /** Client side: the server's 101 response; undefined on the server. */
  readonly response: { statusCode: number, headers: IncomingHttpHeaders } | undefined
  /** Whether this is the server end (it expects masked frames and sends unmasked ones). */
  readonly isServer: boolean
  /** Resolves once the underlying socket has closed, however that happened. Never rejects. */
  get closed (): Promise<void> {
    this.#closed ??= this.#is(Flag.SocketClosed) ? RESOLVED : new Promise((resolve) => { this.#resolveClosed = resolve })
    return this.#closed
  }

  // An idle connection is kept small (servers hold tens of thousands): no closures of its own,
  // queues linked through their items, flags in one number, rarely used state made on demand.
  readonly #socket: Duplex
  readonly #options: ResolvedConnOptions
  readonly #parser: FrameParser
  readonly #deflate: PerMessageDeflate | undefined
  #flags = Flag.CompressWrites
  /** The inflation of the compressed message being received. */
  #inflation: MessageInflation | undefined
  /** Compressed messages fully received and still inflating, oldest first. */
  #inflating: InboundMessage[] | undefined
  /**
   * Compressed bytes handed to the inflater and not yet consumed, plus one for an end of message
   * not yet inflated; while above 0 the parser holds later frames back.
   */
  #inflateBacklog = 0
  /** The read error to report once input held at the socket's end is parsed. */
  #inputEndError: Error | undefined

  // Read side: complete or started messages nobody took yet, and reads waiting for one.
  #inboxHead: InboundMessage | undefined
  #inboxTail: InboundMessage | undefined
  #current: InboundMessage | undefined
  #readHead: PendingRead | undefined
  #readTail: PendingRead | undefined
  #streamReader: MessageReader | undefined
  #readError: Error | undefined
  #bufferedBytes = 0

  // Write side.
  #writeError: Error | undefined
  #writer: MessageWriter | undefined
  #queueHead: QueuedWrite | undefined
  #queueTail: QueuedWrite | undefined
  #drain: Deferred | undefined

  /** A protocol error whose close frame is about to be sent; it wins over an application's close(). */
  #pendingFailure: ProtocolError | undefined
  /** Made on first use: most connections never ask. */
  #closed: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined
  #timers: ConnTimers | undefined
  #handlers: ControlHandlers | undefined
  #json: JsonCodec | undefined
  /** Made when the first streaming reader or writer needs it, so idle connections carry neither. */
  #readerOwner: ReaderOwner | undefined
  #writerOwner: WriterOwner | undefined

  static {
    setJsonCodec = (conn, codec) => { conn.#json = codec }
  }

  constructor (socket: Duplex, init: ConnInit) {
    this.#socket = socket
    this.isServer = init.isServer
    this.subprotocol = init.subprotocol ?? ''
    this.extensions = init.extensions ?? ''
    this.response = init.response
    this.#options = resolveConnOptions(init.options)
    if (init.compression !== undefined) {
      this.#deflate = new PerMessageDeflate(init.compression.params, init.isServer, {
        ...init.compression.options,
        readLimit: () => this.#parser.options.readLimit
      })
    }
    this.#parser = new FrameParser(new Conn.#Sink(this), {
      isServer: init.isServer,
      readLimit: this.#options.readLimit,
      maxFragments: this.#options.maxFragments,
      allowRsv1: this.#deflate !== undefined,
      validateUtf8: this.#options.validateUtf8
    })
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
    if (init.head !== undefined && init.head.length > 0) this.#parser.push(init.head)
    if (socket.destroyed) this.#onClose()
  }

  #is (flag: Flag): boolean {
    return (this.#flags & flag) !== 0
  }

  #set (flag: Flag, on: boolean): void {
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag
  }

  // ---- Addresses and state -------------------------------------------------------------------

  /** The underlying socket. Reading or writing it directly corrupts the WebSocket stream. */
  get socket (): Duplex {
    return this.#socket
  }

  /** The local IP address, when the socket is a TCP socket. */
  get localAddress (): string | undefined {
    return (this.#socket as Partial<Socket>).localAddress
  }

  /** The local port, when the socket is a TCP socket. */
  get localPort (): number | undefined {
    return (this.#socket as Partial<Socket>).localPort
  }

  /** The peer's IP address, when the socket is a TCP socket. */
  get remoteAddress (): string | undefined {
    return (this.#socket as Partial<Socket>).remoteAddress
  }

  /** The peer's port, when the socket is a TCP socket. */
  get remotePort (): number | undefined {
    return (this.#socket as Partial<Socket>).remotePort
  }

  /** Bytes handed to the socket and not yet written to the kernel. */
  get bufferedAmount (): number {
    return this.#socket.writableLength
  }

  /** The read limit in bytes (0 = none). */
  get readLimit (): number {
    return this.#parser.options.readLimit
  }

  /** The fragment size of `nextWriter` messages. */
  get writeBufferSize (): number {
    return this.#options.writeBufferSize
  }

  /** Bytes of unread messages that pause reading from the socket when exceeded. */
  get readBufferSize (): number {
    return this.#options.readBufferSize
  }

  /** Sets the largest message the connection accepts; a bigger one closes it with 1009. 0 = none. */
  setReadLimit (limit: number): void {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`websocket: read limit must be an integer >= 0, got ${limit}`)
    this.#parser.options.readLimit = limit
  }

  // ---- Reading --------------------------------------------------------------------------------

  /**
   * Resolves with the next data message, whole. Messages are delivered in order, one per call,
   * also to concurrent callers. After a failure (a close frame from the peer included) every read
   * rejects with the same error.
   */
  readMessage (options?: ReadOptions): Promise<Message> {
    return this.#enqueueRead(ReadKind.Message, options?.signal)
  }

  /**
   * Resolves with a reader that streams the next data message as it arrives, so a message far
   * larger than memory can be consumed. Starting another read discards what the previous reader
   * left unread, as in gorilla.
   */
  nextReader (options?: ReadOptions): Promise<MessageReader> {
    return this.#enqueueRead(ReadKind.Stream, options?.signal)
  }

  /**
   * Reads the next message and parses it as JSON (or through the plugin's schema); a parse error
   * rejects but leaves the connection usable.
   */
  async readJSON<T = unknown> (options?: ReadOptions): Promise<T> {
    const { data } = await this.readMessage(options)
    const codec = this.#json
    if (codec !== undefined) return await codec.decode(this, data) as T
    return JSON.parse(data.toString()) as T
  }

  /** Iterates over messages until the peer closes with 1000, 1001 or no status; other failures throw. */
  [Symbol.asyncIterator] (): AsyncIterator<Message> {
    return new Conn.#Iterator(this)
  }

  /**
   * Fails reads at `deadline` (a Date or epoch milliseconds; null clears it). A read that fails
   * this way breaks the read side for good, as in gorilla; use a read's `signal` for a soft timeout.
   */
  setReadDeadline (deadline: Date | number | null): void {
    const timers = this.#timers
    if (timers?.read !== undefined) {
      clearTimeout(timers.read)
      timers.read = undefined
    }
    if (deadline === null) return
    const delay = Math.max(0, +deadline - Date.now())
    const timer = setTimeout(() => {
      this.#timers!.read = undefined
      this.#failRead(new TimeoutError('read deadline exceeded'))
    }, delay)
    timer.unref()
    this.#makeTimers().read = timer
  }

  #makeTimers (): ConnTimers {
    this.#timers ??= { read: undefined, write: undefined, writeAt: 0, writeDeadline: 0, close: undefined }
    return this.#timers
  }

  #enqueueRead<T> (kind: ReadKind, signal: AbortSignal | undefined): Promise<T> {
    // A new read abandons the rest of the message a previous streaming reader left.
    if (this.#streamReader !== undefined) this.#streamReader.discard()
    if (signal?.aborted === true) return Promise.reject(signal.reason)
    return new Promise<T>((resolve, reject) => {
      const read: PendingRead = { kind, resolve, reject, signal, onAbort: undefined, next: undefined }
      if (signal !== undefined) {
        read.onAbort = () => {
          this.#removeRead(read)
          reject(signal.reason)
          this.#updateFlow()
        }
        signal.addEventListener('abort', read.onAbort, { once: true })
      }
      if (this.#readTail === undefined) this.#readHead = read
      else this.#readTail.next = read
      this.#readTail = read
      this.#serveReads()
      // Input the socket delivered before its end is parsed only for a reader that asks for it.
      if (this.#is(Flag.InputEnded) && this.#readHead !== undefined) this.#resumeInput()
    })
  }

  #shiftRead (): PendingRead {
    const read = this.#readHead!
    this.#readHead = read.next
    if (read.next === undefined) this.#readTail = undefined
    read.next = undefined
    return read
  }

  /** Takes a waiting read out of the queue (its signal aborted; a settled read is no longer listening). */
  #removeRead (read: PendingRead): void {
    if (this.#readHead === read) {
      this.#shiftRead()
      return
    }
    let previous = this.#readHead!
    while (previous.next !== read) previous = previous.next!
    previous.next = read.next
    if (this.#readTail === read) this.#readTail = previous
    read.next = undefined
  }

  #pushInbox (message: InboundMessage): void {
    if (this.#inboxTail === undefined) this.#inboxHead = message
    else this.#inboxTail.next = message
    this.#inboxTail = message
  }

  #shiftInbox (): void {
    const message = this.#inboxHead!
    this.#inboxHead = message.next
    if (message.next === undefined) this.#inboxTail = undefined
    message.next = undefined
  }

  #serveReads (): void {
    for (let read = this.#readHead; read !== undefined; read = this.#readHead) {
      const message = this.#inboxHead
      if (message === undefined) {
        const error = this.#readError
        if (error === undefined) break
        this.#readHead = this.#readTail = undefined
        for (let item: PendingRead | undefined = read; item !== undefined;) {
          const next: PendingRead | undefined = item.next
          item.next = undefined
          settleError(item, error)
          item = next
        }
        break
      }
      if (read.kind === ReadKind.Stream) {
        this.#shiftRead()
        this.#shiftInbox()
        // The reader reports what it takes through readerOwner.consumed, buffered pieces included.
        const reader = new MessageReader(message, this.#readerOwner ??= this.#makeReaderOwner())
        this.#streamReader = reader
        settleValue(read, reader)
        continue
      }
      if (!message.done) break
      this.#shiftRead()
      this.#shiftInbox()
      this.#bufferedBytes -= message.bytes
      settleValue(read, { type: message.type, data: message.takeAll() })
    }
    this.#updateFlow()
  }

  /** Pauses the socket while too much unread data waits, unless a read is waiting for it. */
  #updateFlow (): void {
    if (this.#is(Flag.SocketClosed)) return
    const head = this.#readHead
    const waitingForWhole = head !== undefined && head.kind !== ReadKind.Stream && this.#inboxHead !== undefined && this.#inboxHead === this.#inboxTail
    const readAhead = this.#options.readBufferSize
    const pause = (this.#bufferedBytes > readAhead && !waitingForWhole) || this.#parser.heldBytes > readAhead
    if (pause !== this.#is(Flag.Paused)) {
      this.#set(Flag.Paused, pause)
      if (pause) this.#socket.pause()
      else this.#socket.resume()
    }
  }

  #makeReaderOwner (): ReaderOwner {
    return {
      consumed: (bytes) => {
        this.#bufferedBytes -= bytes
        this.#updateFlow()
      },
      released: (reader) => {
        if (this.#streamReader === reader) this.#streamReader = undefined
      }
    }
  }

  /** Makes `error` the permanent read error: queued complete messages are still delivered first. */
  #failRead (error: Error): void {
    if (this.#readError !== undefined) return
    this.#readError = error
    if (this.#timers?.read !== undefined) clearTimeout(this.#timers.read)
    const current = this.#current
    if (current !== undefined) {
      // It stays #current: the parser still hands over its remaining frames, which are dropped.
      current.discarded = true
      this.#abandon(current, error)
    }
    this.#serveReads()
  }

  /** A message that can never complete: it leaves the inbox, and a reader streaming it fails with `error`. */
  #abandon (message: InboundMessage, error: Error): void {
    message.error = error
    let previous: InboundMessage | undefined
    for (let item = this.#inboxHead; item !== undefined; previous = item, item = item.next) {
      if (item !== message) continue
      if (previous === undefined) this.#inboxHead = item.next
      else previous.next = item.next
      if (this.#inboxTail === item) this.#inboxTail = previous
      item.next = undefined
      this.#bufferedBytes -= message.bytes
      break
    }
    message.wake?.()
  }

  /** The parser's sink: one small object per connection whose methods reach the connection's state. */
  static readonly #Sink = class ConnSink implements FrameSink {
    readonly conn: Conn
    constructor (conn: Conn) {
      this.conn = conn
    }

    onWholeMessage (type: DataMessageType, payload: Buffer): void {
      const conn = this.conn
      if (conn.#readError !== undefined) return
      const read = conn.#readHead
      if (read !== undefined && conn.#inboxHead === undefined && read.kind !== ReadKind.Stream) {
        // The common case, a reader already waiting: no message object, no queue.
        conn.#shiftRead()
        settleValue(read, { type, data: payload })
        return
      }
      const message = new InboundMessage(type, false)
      message.push(payload)
      message.done = true
      conn.#pushInbox(message)
      conn.#bufferedBytes += payload.length
      if (read !== undefined) conn.#serveReads()
      else conn.#updateFlow()
    }

    onMessageStart (type: DataMessageType, compressed: boolean): void {
      const conn = this.conn
      const message = new InboundMessage(type, compressed)
      conn.#current = message
      // Every compressed message is inflated, a discarded one too: its frames still arrive.
      if (compressed) {
        conn.#inflation = conn.#deflate!.inflateMessage(conn.#inflateInto(message), type === TextMessage && conn.#options.validateUtf8)
      }
      if (conn.#readError !== undefined) {
        message.discarded = true
        return
      }
      conn.#pushInbox(message)
      if (conn.#readHead !== undefined && conn.#readHead.kind === ReadKind.Stream) conn.#serveReads()
    }

    onMessageData (piece: Buffer): void {
      const conn = this.conn
      const message = conn.#current!
      if (message.compressed) {
        // Inflated even when nobody wants the message: the peer's compression history needs it.
        conn.#bufferedBytes += piece.length
        conn.#inflateBacklog += piece.length
        conn.#inflation!.write(piece)
        conn.#holdInputWhileInflating()
        conn.#updateFlow()
        return
      }
      if (message.discarded) return
      conn.#deliver(message, piece)
    }

    onMessageEnd (): void {
      const conn = this.conn
      const message = conn.#current!
      conn.#current = undefined
      if (message.compressed) {
        // One whose inflation already failed (behind an earlier failure, say) has nothing left to wait for.
        if (message.error === undefined) (conn.#inflating ??= []).push(message)
        const inflation = conn.#inflation!
        conn.#inflation = undefined
        conn.#inflateBacklog++
        inflation.end()
        conn.#holdInputWhileInflating()
        return
      }
      conn.#messageDone(message)
    }

    onPing (data: Buffer): void {
      this.conn.#runControlHandler(this.conn.#handlers?.ping, data, true)
    }

    onPong (data: Buffer): void {
      this.conn.#runControlHandler(this.conn.#handlers?.pong, data, false)
    }

    onClose (code: number, text: string): void {
      this.conn.#onCloseFrame(code, text)
    }

    onProtocolError (error: ProtocolError): void {
      this.conn.#onProtocolError(error)
    }
  }

  #onProtocolError (error: ProtocolError): void {
    // Nothing received after the offending frame or message is acted on (an inflation failure
    // comes after the parser moved on).
    this.#parser.stop()
    this.#failRead(error)
    if (this.#is(Flag.InputEnded)) this.#endInput(undefined)
    // As for a close frame: replies to the messages before the bad frame go out first.
    this.#pendingFailure = error
    setImmediate(() => { this.#failConnection(error) })
  }

  #deliver (message: InboundMessage, piece: Buffer): void {
    message.push(piece)
    this.#bufferedBytes += piece.length
    if (message.wake !== undefined) message.wake()
    else this.#updateFlow()
  }

  #messageDone (message: InboundMessage): void {
    message.done = true
    if (message.wake !== undefined) message.wake()
    else if (this.#readHead !== undefined) this.#serveReads()
  }

  /** Where the inflated bytes of one compressed message go. */
  #inflateInto (message: InboundMessage): import('./deflate/codec.js').InflateTarget {
    return {
      onData: (chunk) => {
        if (message.error === undefined && !message.discarded) this.#deliver(message, chunk)
      },
      onEnd: () => {
        this.#inflateBacklog--
        this.#inflationSettled(message)
        if (message.error === undefined) this.#messageDone(message)
        this.#resumeInput()
      },
      onError: (error) => {
        this.#inflateBacklog = 0
        this.#inflationSettled(message)
        // The message may be whole on the wire already (no longer #current), so #failRead would
        // leave it, and the reads waiting for it, in the inbox forever.
        this.#abandon(message, error)
        this.#onProtocolError(error)
        this.#serveReads()
      },
      onConsumed: (bytes) => {
        this.#bufferedBytes -= bytes
        this.#inflateBacklog -= bytes
        this.#resumeInput()
        this.#updateFlow()
      }
    }
  }

  #inflationSettled (message: InboundMessage): void {
    const inflating = this.#inflating
    const index = inflating === undefined ? -1 : inflating.indexOf(message)
    if (index !== -1) inflating!.splice(index, 1)
    this.#releaseDeflate()
  }

  /** Frees the zlib contexts once the socket is gone and nothing received before its end still inflates. */
  #releaseDeflate (): void {
    if (!this.#is(Flag.SocketClosed) || this.#is(Flag.InputEnded | Flag.DeflateReleased)) return
    const inflating = this.#inflating
    if (inflating === undefined || inflating.length === 0) {
      this.#set(Flag.DeflateReleased, true)
      this.#deflate?.close()
    }
  }

  /**
   * Holds later frames back while a compressed piece inflates on the thread pool, so that a frame
   * after a message that turns out corrupt (a ping, say) is never acted on; pieces inflated on
   * this thread finish before this is called and hold nothing.
   */
  #holdInputWhileInflating (): void {
    if (this.#inflateBacklog > 0) this.#parser.pause()
  }

  /**
   * Parses the input held behind an inflation once it has finished. After the socket's end, only
   * while a reader waits: input nobody asks for is not worth inflating.
   */
  #resumeInput (): void {
    const parser = this.#parser
    if (!parser.isPaused || this.#inflateBacklog > 0) return
    const ended = this.#is(Flag.InputEnded)
    if (ended && !this.#readerWaiting()) return
    parser.resume()
    if (ended && !parser.isPaused) this.#endInput(this.#inputEndError)
    this.#updateFlow()
  }

  #readerWaiting (): boolean {
    return this.#readHead !== undefined || this.#streamReader !== undefined
  }

  /**
   * The socket delivers no more input. Input held behind an inflation is still parsed for a
   * reader waiting for it; otherwise it is dropped, with the inflations nobody will read.
   */
  #onInputEnd (error: Error | undefined): void {
    if (this.#is(Flag.InputEnded)) return
    const parser = this.#parser
    if (parser.isPaused && !parser.isFailed && this.#readerWaiting()) {
      this.#set(Flag.InputEnded, true)
      this.#inputEndError = error
      return
    }
    this.#endInput(error)
  }

  /** Reports the end of input to readers (1006 when no close frame came) and drops what still inflates. */
  #endInput (error: Error | undefined): void {
    this.#set(Flag.InputEnded, false)
    this.#inputEndError = undefined
    this.#parser.stop()
    if (this.#readError === undefined) this.#failRead(error ?? stackless(() => new CloseError(1006, 'unexpected EOF')))
    const inflating = this.#inflating
    if (inflating !== undefined && inflating.length > 0) {
      // Whole on the wire but not inflated: nobody waited for these, and nobody will get them.
      for (const message of inflating.splice(0)) this.#abandon(message, this.#readError!)
      this.#inflateBacklog = 0
      this.#set(Flag.DeflateReleased, true)
      this.#deflate!.close()
      this.#serveReads()
    }
    this.#releaseDeflate()
  }

  /** Iterates over messages: each `next()` is one read, resolved directly with its result. */
  static readonly #Iterator = class MessageIterator implements AsyncIterator<Message> {
    readonly conn: Conn
    constructor (conn: Conn) {
      this.conn = conn
    }

    next (): Promise<IteratorResult<Message>> {
      return this.conn.#enqueueRead(ReadKind.Iterate, undefined)
    }

    return (): Promise<IteratorResult<Message>> {
      return Promise.resolve({ value: undefined, done: true })
    }
  }

  // ---- Control handlers ----------------------------------------------------------------------

  #makeHandlers (): ControlHandlers {
    this.#handlers ??= { close: undefined, ping: undefined, pong: undefined }
    return this.#handlers
  }

  /** Replaces what happens when a close frame arrives; null restores the default (echo the code, then end TCP). */
  setCloseHandler (handler: CloseHandler | null): void {
    this.#makeHandlers().close = handler ?? undefined
  }

  /** Replaces what happens when a ping arrives; null restores the default (answer with a pong of the same payload). */
  setPingHandler (handler: ControlHandler | null): void {
    this.#makeHandlers().ping = handler ?? undefined
  }

  /** Replaces what happens when a pong arrives; null restores the default (nothing). */
  setPongHandler (handler: ControlHandler | null): void {
    this.#makeHandlers().pong = handler ?? undefined
  }

  #runControlHandler (handler: ControlHandler | undefined, data: Buffer, isPing: boolean): void {
    if (handler === undefined) {
      // The default ping handler answers with a pong of the same payload; pongs are ignored.
      if (isPing && !this.#is(Flag.CloseSent) && this.#writeError === undefined) this.#writeFrame(PongMessage, data)
      return
    }
    try {
      const result = handler(data)
      if (result !== undefined) result.catch((error: unknown) => { this.#failRead(asError(error)) })
    } catch (error) {
      this.#failRead(asError(error))
    }
  }

  #onCloseFrame (code: number, text: string): void {
    this.#set(Flag.CloseReceived, true)
    if (this.#readError === undefined) this.#failRead(stackless(() => new CloseError(code, text)))
    // Messages that arrived before the close are already resolved to readers; answering on the
    // next turn lets the application's replies to them (an echo, say) go out before our close.
    setImmediate(() => { this.#runCloseHandler(code, text) })
  }

  #runCloseHandler (code: number, text: string): void {
    const handler = this.#handlers?.close
    if (handler === undefined) {
      // gorilla's default: echo the code without a reason.
      // Not awaited: close() resolves when the socket has closed, and never rejects.
      if (!this.#is(Flag.CloseStarted)) this.close(code, '')
    } else {
      try {
        const result = handler(code, text)
        if (result !== undefined) result.catch(() => {})
      } catch {}
    }
    if (this.#is(Flag.CloseSent)) this.#closingHandshakeDone()
  }

  /**
   * Both close frames are out: the server ends TCP; the client waits for the server to do so
   * (RFC 6455 §7.1.1), up to `closeTimeout`, and answers its end.
   */
  #closingHandshakeDone (): void {
    if (this.isServer) this.#endSocket()
    else this.#armCloseTimer()
  }

  // ---- Writing --------------------------------------------------------------------------------

  /**
   * Sends a whole message as one frame. Resolves once the socket took the bytes, after a 'drain'
   * when the socket was over its high-water mark. Calls made while a `nextWriter` is open wait
   * for it to close, so frames of different messages never interleave.
   */
  writeMessage (type: MessageType, data: Payload): Promise<void> {
    if (type === TextMessage || type === BinaryMessage) {
      const blocked = this.#checkWritable()
      if (blocked !== undefined) return rejected(blocked)
      const payload = toPayload(data)
      if (payload === undefined) return rejected(new UsageError(BAD_PAYLOAD))
      const deflate = this.#deflate
      if (deflate !== undefined && this.#is(Flag.CompressWrites) && deflate.shouldCompress(payloadLength(payload))) {
        const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
        if (!this.#writeBusy()) {
          // A small message is compressed at once on this thread (deflate's syncLimit).
          let compressed: Buffer | undefined
          try {
            compressed = deflate.compressSync(bytes)
          } catch (error) {
            return rejected(error)
          }
          if (compressed !== undefined) return this.#afterWrite(this.#write(encodeFrame(type, true, true, compressed, !this.isServer)))
        }
        const queued = this.#enqueueWrite<void>(async () => {
          const compressed = deflate.compressSync(bytes) ?? await deflate.compress(bytes)
          this.#throwIfWriteEnded()
          return this.#write(encodeFrame(type, true, true, compressed, !this.isServer))
        }, undefined)
        this.#flushQueue()
        return queued
      }
      if (this.#writeBusy()) return this.#enqueueWrite(() => this.#writeFrame(type, payload), undefined)
      return this.#afterWrite(this.#writeFrame(type, payload))
    }
    if (type === CloseMessage || type === PingMessage || type === PongMessage) return this.writeControl(type, data)
    return rejected(new UsageError(`bad message type ${String(type)}`))
  }

  /**
   * Sends `value` as a JSON text message (no trailing newline, unlike gorilla's encoder), or as the
   * plugin's schema serializer writes it.
   */
  writeJSON (value: unknown): Promise<void> {
    const encode = this.#json?.encode
    let text: string | undefined
    if (encode === undefined) {
      text = JSON.stringify(value)
      if (text === undefined) return rejected(new UsageError('value has no JSON representation'))
    } else {
      try {
        text = encode(value)
      } catch (error) {
        return rejected(error)
      }
      if (typeof text !== 'string') return rejected(new UsageError('the serializer did not return a string'))
    }
    return this.writeMessage(TextMessage, text)
  }

  /** Sends a message framed once by a PreparedMessage; the same bytes serve every server connection. */
  writePreparedMessage (message: PreparedMessage): Promise<void> {
    if (message.type >= CloseMessage) return this.writeControl(message.type as ControlMessageType, message.data)
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return rejected(blocked)
    const deflate = this.#deflate
    if (deflate !== undefined && this.#is(Flag.CompressWrites) && deflate.shouldCompress(message.data.length)) {
      const queued = this.#enqueueWrite<void>(async () => {
        // Compressed once for every connection with the same level and window, then sent as is.
        const frame = await message.compressedFrameFor(this.isServer, deflate.level, deflate.sendWindowBits)
        this.#throwIfWriteEnded()
        deflate.standaloneSent()
        return this.#write(frame)
      }, undefined)
      this.#flushQueue()
      return queued
    }
    if (this.#writeBusy()) return this.#enqueueWrite(() => this.#write(message.frameFor(this.isServer)), undefined)
    return this.#afterWrite(this.#write(message.frameFor(this.isServer)))
  }

  /**
   * Resolves with a writer for one message of `type`: `write(chunk)` sends fragments of at most
   * `writeBufferSize` bytes and `close()` sends the final frame. Other writes wait until it closes;
   * control frames still go out between its fragments.
   */
  nextWriter (type: DataMessageType): Promise<MessageWriter> {
    if (type !== TextMessage && type !== BinaryMessage) return rejected(new UsageError(`nextWriter needs a data message type, got ${String(type)}`))
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return rejected(blocked)
    const writer = new MessageWriter(type, this.#writerOwner ??= this.#makeWriterOwner())
    if (this.#writeBusy()) return this.#enqueueWrite(undefined, writer)
    this.#writer = writer
    return Promise.resolve(writer)
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
    const converted = toPayload(data)
    if (converted === undefined) return rejected(new UsageError(BAD_PAYLOAD))
    const payload = typeof converted === 'string' ? Buffer.from(converted) : converted
    if (payload.length > MAX_CONTROL_PAYLOAD) return rejected(new UsageError(`control payload of ${payload.length} bytes, at most 125 allowed`))
    if (deadline !== undefined && +deadline <= Date.now()) return rejected(new TimeoutError('control write deadline exceeded'))
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return rejected(blocked)
    if (type === CloseMessage) this.#set(Flag.CloseSent, true)
    const flushed = this.#writeFrame(type, payload)
    if (type === CloseMessage) this.#afterCloseSent()
    if (flushed) return RESOLVED
    if (deadline !== undefined) this.#armWriteTimer(+deadline)
    return this.#waitDrain()
  }

  /** Every later write must be flushed by `deadline` (a Date or epoch ms; null clears), or the connection is torn down. */
  setWriteDeadline (deadline: Date | number | null): void {
    const at = deadline === null ? 0 : +deadline
    if (at === 0 && this.#timers === undefined) return
    const timers = this.#makeTimers()
    timers.writeDeadline = at
    if (at === 0 && timers.write !== undefined) {
      clearTimeout(timers.write)
      timers.write = undefined
    }
  }

  #checkWritable (): Error | undefined {
    if (this.#writeError !== undefined) return this.#writeError
    if (this.#is(Flag.CloseSent | Flag.CloseStarted)) return new CloseSentError()
    const deadline = this.#timers?.writeDeadline ?? 0
    if (deadline !== 0 && deadline <= Date.now()) {
      this.#writeError = new TimeoutError('write deadline exceeded')
      return this.#writeError
    }
    return undefined
  }

  #writeFrame (opcode: number, payload: Buffer | string): boolean {
    if (this.isServer && typeof payload !== 'string' && payload.length > MERGE_LIMIT) {
      // Big payloads go out beside their header (one writev at the end of the tick) instead of being copied.
      this.#write(encodeHeader(opcode, true, false, payload.length))
      return this.#write(payload)
    }
    return this.#write(encodeFrame(opcode, true, false, payload, !this.isServer))
  }

  /**
   * Writes with the socket corked until the end of this tick, so the frames an application writes
   * in one burst (echoing a batch of received messages, say) leave in one system call. One
   * process-wide callback uncorks every connection corked in the tick.
   */
  #write (bytes: Buffer): boolean {
    if (!this.#is(Flag.Corked)) {
      this.#flags |= Flag.Corked
      this.#socket.cork()
      corkedThisTick.push(this)
      if (!tickEndScheduled) {
        tickEndScheduled = true
        process.nextTick(Conn.#endWriteTick)
      }
    }
    return this.#socket.write(bytes)
  }

  static #endWriteTick (): void {
    tickEndScheduled = false
    // Uncorking may run callbacks that write again: those connections join the list and are
    // uncorked by this same loop.
    for (let i = 0; i < corkedThisTick.length; i++) {
      const conn = corkedThisTick[i]!
      conn.#flags &= ~Flag.Corked
      conn.#socket.uncork()
    }
    corkedThisTick.length = 0
  }

  #afterWrite (flushed: boolean): Promise<void> {
    if (flushed) return RESOLVED
    const deadline = this.#timers?.writeDeadline ?? 0
    if (deadline !== 0) this.#armWriteTimer(deadline)
    return this.#waitDrain()
  }

  /** The shared promise of the next 'drain'; only called right after a write, which never fails synchronously while corked. */
  #waitDrain (): Promise<void> {
    if (this.#drain === undefined) {
      let settle!: Omit<Deferred, 'promise'>
      const promise = new Promise<void>((resolve, reject) => { settle = { resolve, reject } })
      // Shared by every write waiting for it, awaited or not: see rejected().
      promise.catch(noop)
      this.#drain = { promise, ...settle }
    }
    return this.#drain.promise
  }

  #armWriteTimer (deadline: number): void {
    const timers = this.#makeTimers()
    // Several waiting writes may have deadlines (a writeControl's own, say): the soonest wins.
    if (timers.write !== undefined) {
      if (deadline >= timers.writeAt) return
      clearTimeout(timers.write)
    }
    timers.writeAt = deadline
    timers.write = setTimeout(() => {
      // Armed only after a write that did not flush, and cleared by 'drain' or 'finish': bytes still wait.
      timers.write = undefined
      this.#writeError ??= new TimeoutError('write deadline exceeded')
      this.#socket.destroy()
    }, Math.max(0, deadline - Date.now()))
    timers.write.unref()
  }

  #onDrain (): void {
    const timers = this.#timers
    if (timers?.write !== undefined) {
      clearTimeout(timers.write)
      timers.write = undefined
    }
    const drain = this.#drain
    this.#drain = undefined
    drain?.resolve()
  }

  /** Why a write accepted earlier can no longer go out (a close frame or a failure came first). */
  #writeEnded (): Error | undefined {
    return this.#writeError ?? (this.#is(Flag.CloseSent) ? new CloseSentError() : undefined)
  }

  /** After a compression: a close frame written meanwhile must stay the last frame. */
  #throwIfWriteEnded (): void {
    const ended = this.#writeEnded()
    if (ended !== undefined) throw ended
  }

  /** Whether a write must queue behind an open writer, a compression or earlier queued writes. */
  #writeBusy (): boolean {
    return this.#writer !== undefined || this.#is(Flag.Compressing) || this.#queueHead !== undefined
  }

  /** Turns compression of later messages on or off; it has no effect when none was negotiated. */
  enableWriteCompression (enable: boolean): void {
    this.#set(Flag.CompressWrites, enable)
  }

  /** Sets the zlib level (0-9) of messages compressed from now on; throws a RangeError otherwise. */
  setCompressionLevel (level: number): void {
    checkLevel(level)
    this.#deflate?.setLevel(level)
  }

  /** Whether permessage-deflate was negotiated for this connection. */
  get compressionNegotiated (): boolean {
    return this.#deflate !== undefined
  }

  #enqueueWrite<T> (run: (() => boolean | Promise<boolean>) | undefined, writer: MessageWriter | undefined): Promise<T> {
    const queued = new Promise<T>((resolve, reject) => {
      const item: QueuedWrite = { run, writer, resolve, reject, next: undefined }
      if (this.#queueTail === undefined) this.#queueHead = item
      else this.#queueTail.next = item
      this.#queueTail = item
    })
    // A write nobody awaits must not become an unhandled rejection when the connection fails.
    queued.catch(noop)
    return queued
  }

  #shiftQueue (): QueuedWrite {
    const item = this.#queueHead!
    this.#queueHead = item.next
    if (item.next === undefined) this.#queueTail = undefined
    item.next = undefined
    return item
  }

  /** Runs queued writes in order until the queue is empty or a writer takes the connection. */
  #flushQueue (): void {
    while (this.#writer === undefined && !this.#is(Flag.Compressing) && this.#queueHead !== undefined) {
      const item = this.#shiftQueue()
      if (this.#writeError !== undefined) {
        item.reject(this.#writeError)
        continue
      }
      if (this.#is(Flag.CloseSent)) {
        item.reject(new CloseSentError())
        continue
      }
      if (item.writer !== undefined) {
        this.#writer = item.writer
        item.resolve(item.writer)
        continue
      }
      const result = item.run!()
      if (typeof result === 'boolean') {
        this.#afterWrite(result).then(item.resolve, item.reject)
        continue
      }
      this.#set(Flag.Compressing, true)
      result.then((flushed) => {
        this.#set(Flag.Compressing, false)
        this.#afterWrite(flushed).then(item.resolve, item.reject)
        this.#flushQueue()
      }, (error: unknown) => {
        this.#set(Flag.Compressing, false)
        item.reject(this.#writeError ?? asError(error))
        this.#flushQueue()
      })
    }
  }

  #makeWriterOwner (): WriterOwner {
    return {
      isServer: () => this.isServer,
      fragmentSize: () => this.#options.writeBufferSize,
      pool: () => this.#options.writeBufferPool,
      checkWritable: () => this.#writeEnded(),
      write: (bytes, done) => {
        const flushed = this.#socket.write(bytes, (error) => {
          // A failed write reports the connection's reason (a write deadline, say), not the stream's.
          if (error != null) this.#writeError ??= new WriteClosedError(`socket error: ${error.message}`)
          done(error == null ? error : this.#writeError)
        })
        const deadline = this.#timers?.writeDeadline ?? 0
        if (!flushed && deadline !== 0) this.#armWriteTimer(deadline)
        return flushed
      },
      startCompression: (size) => {
        const deflate = this.#deflate
        return deflate !== undefined && this.#is(Flag.CompressWrites) && deflate.shouldCompress(size) ? deflate.startCompress() : undefined
      },
      cork: () => { this.#socket.cork() },
      uncork: () => { this.#socket.uncork() },
      finished: (writer) => {
        if (this.#writer === writer) {
          this.#writer = undefined
          this.#flushQueue()
        }
      }
    }
  }

  // ---- Closing --------------------------------------------------------------------------------

  /**
   * Runs the closing handshake: after every message already accepted for writing, sends a close
   * frame with `code` and `reason`, waits for the peer's close frame and the end of TCP, and
   * destroys the socket if that takes longer than `closeTimeout`. Resolves when the socket is
   * closed; never rejects. Later writes reject with CloseSentError.
   */
  close (code = 1000, reason = ''): Promise<void> {
    if (this.#pendingFailure !== undefined) this.#failConnection(this.#pendingFailure)
    if (this.#is(Flag.CloseStarted | Flag.SocketClosed)) return this.closed
    const payload = formatCloseMessage(code, truncateUtf8(reason, MAX_CONTROL_PAYLOAD - 2))
    this.#set(Flag.CloseStarted, true)
    this.#armCloseTimer()
    if (this.#is(Flag.CloseSent) || this.#writeError !== undefined) {
      this.#endSocket()
      return this.closed
    }
    // #flushQueue refuses queued writes once a close frame is out, so this runs at most once.
    const send = (): boolean => {
      this.#set(Flag.CloseSent, true)
      const flushed = this.#writeFrame(CloseMessage, payload)
      this.#afterCloseSent()
      return flushed
    }
    if (this.#writeBusy()) {
      this.#enqueueWrite(send, undefined)
    } else {
      send()
    }
    return this.closed
  }

  /** Destroys the socket at once, without a closing handshake (gorilla's `Close`). */
  terminate (): void {
    this.#socket.destroy()
  }

  #afterCloseSent (): void {
    this.#armCloseTimer()
    if (this.#is(Flag.CloseReceived)) this.#closingHandshakeDone()
  }

  #armCloseTimer (): void {
    if (this.#timers?.close !== undefined || this.#is(Flag.SocketClosed)) return
    const timer = setTimeout(() => { this.#socket.destroy() }, this.#options.closeTimeout)
    timer.unref()
    this.#makeTimers().close = timer
  }

  /** Ends TCP once both close frames are out; what was written before is flushed first. */
  #endSocket (): void {
    this.#armCloseTimer()
    if (!this.#socket.writableEnded) this.#socket.end()
  }

  /** Fails the connection (RFC 6455 §7.1.7): close frame with the error's code, then end TCP. */
  #failConnection (error: ProtocolError): void {
    this.#pendingFailure = undefined
    if (!this.#is(Flag.CloseSent) && this.#writeError === undefined) {
      this.#set(Flag.CloseSent | Flag.CloseStarted, true)
      this.#writeFrame(CloseMessage, formatCloseMessage(error.closeCode, truncateUtf8(error.message, MAX_CONTROL_PAYLOAD - 2)))
    }
    this.#endSocket()
  }

  // ---- Socket events ----------------------------------------------------------------------------

  // One function per event for every socket: `this` is the socket, which knows its connection.
  static readonly #onSocketData = function (this: ConnSocket, chunk: Buffer): void {
    this[kConn].#parser.push(chunk)
  }

  static readonly #onSocketEnd = function (this: ConnSocket): void {
    const conn = this[kConn]
    conn.#onInputEnd(undefined)
    conn.#endSocket()
  }

  static readonly #onSocketError = function (this: ConnSocket, error: Error): void {
    const conn = this[kConn]
    if (conn.#readError === undefined) conn.#onInputEnd(stackless(() => new CloseError(1006, error.message, { cause: error })))
    if (conn.#writeError === undefined) conn.#failWrite(stackless(() => new WriteClosedError(`socket error: ${error.message}`)))
  }

  static readonly #onSocketClose = function (this: ConnSocket): void {
    this[kConn].#onClose()
  }

  static readonly #onSocketDrain = function (this: ConnSocket): void {
    this[kConn].#onDrain()
  }

  #onClose (): void {
    if (this.#is(Flag.SocketClosed)) return
    this.#set(Flag.SocketClosed, true)
    this.#onInputEnd(undefined)
    this.#failWrite(this.#writeError ?? stackless(() => new WriteClosedError('connection closed')))
    const timers = this.#timers
    if (timers !== undefined) {
      for (const timer of [timers.close, timers.read, timers.write]) {
        if (timer !== undefined) clearTimeout(timer)
      }
    }
    this.#resolveClosed?.()
  }

  /** Makes the first write error permanent and fails every write waiting for the socket. */
  #failWrite (reason: Error): void {
    const error = this.#writeError ?? reason
    this.#writeError = error
    const drain = this.#drain
    this.#drain = undefined
    drain?.reject(error)
    let item = this.#queueHead
    this.#queueHead = this.#queueTail = undefined
    while (item !== undefined) {
      const next: QueuedWrite | undefined = item.next
      item.next = undefined
      item.reject(error)
      item = next
    }
    this.#writer?.abort(error)
  }
}

function settleValue (read: PendingRead, value: unknown): void {
  if (read.onAbort !== undefined) read.signal!.removeEventListener('abort', read.onAbort)
  read.resolve(read.kind === ReadKind.Iterate ? { value, done: false } : value)
}

function settleError (read: PendingRead, error: Error): void {
  if (read.onAbort !== undefined) read.signal!.removeEventListener('abort', read.onAbort)
  if (read.kind === ReadKind.Iterate && isCloseError(error, ...NORMAL_ENDS)) read.resolve({ value: undefined, done: true })
  else read.reject(error)
}

function asError (value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}
