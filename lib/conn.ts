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
import { CloseError, CloseSentError, ProtocolError, TimeoutError, UsageError, WriteClosedError, isCloseError } from './protocol/errors.js'
import { FrameParser, type FrameSink } from './protocol/parser.js'
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

interface PendingRead {
  stream: boolean
  resolve: (value: any) => void
  reject: (error: Error) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
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
}

const RESOLVED = Promise.resolve()
const NORMAL_ENDS = [1000, 1001, 1005]

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
    this.#closed ??= this.#socketClosed ? RESOLVED : new Promise((resolve) => { this.#resolveClosed = resolve })
    return this.#closed
  }

  readonly #socket: Duplex
  readonly #options: ResolvedConnOptions
  readonly #parser: FrameParser
  readonly #deflate: PerMessageDeflate | undefined
  #compressWrites = true
  /** The inflation of the compressed message being received. */
  #inflation: MessageInflation | undefined
  /** Compressed messages fully received and still inflating, oldest first. */
  readonly #inflating: InboundMessage[] = []
  /** A compression for the write at the head of the queue is running; later writes wait. */
  #compressing = false

  // Read side.
  readonly #inbox: InboundMessage[] = []
  #current: InboundMessage | undefined
  readonly #readers: PendingRead[] = []
  #streamReader: MessageReader | undefined
  #readError: Error | undefined
  #bufferedBytes = 0
  #paused = false
  #readTimer: NodeJS.Timeout | undefined

  // Write side.
  #writeError: Error | undefined
  #writer: MessageWriter | undefined
  readonly #writeQueue: QueuedWrite[] = []
  #drain: Promise<void> | undefined
  #drainResolve: (() => void) | undefined
  #drainReject: ((error: Error) => void) | undefined
  #writeDeadline = 0
  #corked = false
  #writeTimer: NodeJS.Timeout | undefined
  #writeTimerDeadline = 0

  // Closing.
  #closeSent = false
  #closeReceived = false
  #closeStarted = false
  #closeTimer: NodeJS.Timeout | undefined
  /** A protocol error whose close frame is about to be sent; it wins over an application's close(). */
  #pendingFailure: ProtocolError | undefined
  #socketClosed = false
  /** Made on first use: most connections never ask. */
  #closed: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined

  #closeHandler: CloseHandler | undefined
  #pingHandler: ControlHandler | undefined
  #pongHandler: ControlHandler | undefined

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
    this.#parser = new FrameParser(this.#sink, {
      isServer: init.isServer,
      readLimit: this.#options.readLimit,
      maxFragments: this.#options.maxFragments,
      allowRsv1: this.#deflate !== undefined,
      validateUtf8: this.#options.validateUtf8
    })
    const netSocket = socket as Partial<Socket>
    if (typeof netSocket.setNoDelay === 'function') netSocket.setNoDelay(true)
    if (typeof netSocket.setTimeout === 'function') netSocket.setTimeout(0)
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    socket.on('drain', this.#onDrain)
    // Once end() was called Node reports the last flush with 'finish', never with 'drain'.
    socket.on('finish', this.#onDrain)
    if (init.head !== undefined && init.head.length > 0) this.#parser.push(init.head)
    if (socket.destroyed) this.#onClose()
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
    return this.#enqueueRead(false, options?.signal)
  }

  /**
   * Resolves with a reader that streams the next data message as it arrives, so a message far
   * larger than memory can be consumed. Starting another read discards what the previous reader
   * left unread, as in gorilla.
   */
  nextReader (options?: ReadOptions): Promise<MessageReader> {
    return this.#enqueueRead(true, options?.signal)
  }

  /** Reads the next message and parses it as JSON; a parse error rejects but leaves the connection usable. */
  async readJSON<T = unknown> (options?: ReadOptions): Promise<T> {
    const { data } = await this.readMessage(options)
    return JSON.parse(data.toString()) as T
  }

  /** Iterates over messages until the peer closes with 1000, 1001 or no status; other failures throw. */
  async * [Symbol.asyncIterator] (): AsyncIterator<Message> {
    for (;;) {
      try {
        yield await this.readMessage()
      } catch (error) {
        if (isCloseError(error, ...NORMAL_ENDS)) return
        throw error
      }
    }
  }

  /**
   * Fails reads at `deadline` (a Date or epoch milliseconds; null clears it). A read that fails
   * this way breaks the read side for good, as in gorilla; use a read's `signal` for a soft timeout.
   */
  setReadDeadline (deadline: Date | number | null): void {
    if (this.#readTimer !== undefined) clearTimeout(this.#readTimer)
    this.#readTimer = undefined
    if (deadline === null) return
    const delay = Math.max(0, +deadline - Date.now())
    this.#readTimer = setTimeout(() => {
      this.#readTimer = undefined
      this.#failRead(new TimeoutError('read deadline exceeded'))
    }, delay)
    this.#readTimer.unref()
  }

  #enqueueRead<T> (stream: boolean, signal: AbortSignal | undefined): Promise<T> {
    // A new read abandons the rest of the message a previous streaming reader left.
    if (this.#streamReader !== undefined) this.#streamReader.discard()
    if (signal?.aborted === true) return Promise.reject(signal.reason)
    return new Promise<T>((resolve, reject) => {
      const read: PendingRead = { stream, resolve, reject, signal, onAbort: undefined }
      if (signal !== undefined) {
        read.onAbort = () => {
          const index = this.#readers.indexOf(read)
          if (index !== -1) this.#readers.splice(index, 1)
          reject(signal.reason)
          this.#updateFlow()
        }
        signal.addEventListener('abort', read.onAbort, { once: true })
      }
      this.#readers.push(read)
      this.#serveReads()
    })
  }

  #serveReads (): void {
    const readers = this.#readers
    const inbox = this.#inbox
    while (readers.length > 0) {
      const message = inbox[0]
      if (message === undefined) {
        if (this.#readError === undefined) break
        const error = this.#readError
        for (const read of readers.splice(0)) settle(read, undefined, error)
        break
      }
      const read = readers[0]!
      if (read.stream) {
        readers.shift()
        inbox.shift()
        // The reader reports what it takes through readerOwner.consumed, buffered pieces included.
        const reader = new MessageReader(message, this.#readerOwner ??= this.#makeReaderOwner())
        this.#streamReader = reader
        settle(read, reader, undefined)
        continue
      }
      if (!message.done) break
      readers.shift()
      inbox.shift()
      this.#bufferedBytes -= message.bytes
      settle(read, { type: message.type, data: message.takeAll() }, undefined)
    }
    this.#updateFlow()
  }

  /** Pauses the socket while too much unread data waits, unless a read is waiting for it. */
  #updateFlow (): void {
    if (this.#socketClosed) return
    const waitingForWhole = this.#readers.length > 0 && !this.#readers[0]!.stream && this.#inbox.length === 1
    const pause = this.#bufferedBytes > this.#options.readBufferSize && !waitingForWhole
    if (pause !== this.#paused) {
      this.#paused = pause
      if (pause) this.#socket.pause()
      else this.#socket.resume()
    }
  }

  /** Made when the first streaming reader or writer needs it, so idle connections carry neither. */
  #readerOwner: ReaderOwner | undefined
  #writerOwner: WriterOwner | undefined

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
    if (this.#readTimer !== undefined) clearTimeout(this.#readTimer)
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
    const index = this.#inbox.indexOf(message)
    if (index !== -1) {
      this.#inbox.splice(index, 1)
      this.#bufferedBytes -= message.bytes
    }
    message.wake?.()
  }

  readonly #sink: FrameSink = {
    onMessageStart: (type, compressed) => {
      const message = new InboundMessage(type, compressed)
      this.#current = message
      // Every compressed message is inflated, a discarded one too: its frames still arrive.
      if (compressed) {
        this.#inflation = this.#deflate!.inflateMessage(this.#inflateInto(message), type === TextMessage && this.#options.validateUtf8)
      }
      if (this.#readError !== undefined) {
        message.discarded = true
        return
      }
      this.#inbox.push(message)
      if (this.#readers.length > 0 && this.#readers[0]!.stream) this.#serveReads()
    },
    onMessageData: (piece) => {
      const message = this.#current!
      if (message.compressed) {
        // Inflated even when nobody wants the message: the peer's compression history needs it.
        this.#bufferedBytes += piece.length
        this.#inflation!.write(piece)
        this.#updateFlow()
        return
      }
      if (message.discarded) return
      this.#deliver(message, piece)
    },
    onMessageEnd: () => {
      const message = this.#current!
      this.#current = undefined
      if (message.compressed) {
        // One whose inflation already failed (behind an earlier failure, say) has nothing left to wait for.
        if (message.error === undefined) this.#inflating.push(message)
        this.#inflation!.end()
        this.#inflation = undefined
        return
      }
      this.#messageDone(message)
    },
    onPing: (data) => { this.#runControlHandler(this.#pingHandler, data, this.#defaultPing) },
    onPong: (data) => { this.#runControlHandler(this.#pongHandler, data, undefined) },
    onClose: (code, text) => { this.#onCloseFrame(code, text) },
    onProtocolError: (error) => {
      this.#failRead(error)
      // As for a close frame: replies to the messages before the bad frame go out first.
      this.#pendingFailure = error
      setImmediate(() => { this.#failConnection(error) })
    }
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
    else if (this.#readers.length > 0) this.#serveReads()
  }

  /** Where the inflated bytes of one compressed message go. */
  #inflateInto (message: InboundMessage): import('./deflate/codec.js').InflateTarget {
    return {
      onData: (chunk) => {
        if (message.error === undefined && !message.discarded) this.#deliver(message, chunk)
      },
      onEnd: () => {
        this.#inflationSettled(message)
        if (message.error === undefined) this.#messageDone(message)
      },
      onError: (error) => {
        this.#inflationSettled(message)
        // The message may be whole on the wire already (no longer #current), so #failRead would
        // leave it, and the reads waiting for it, in the inbox forever.
        this.#abandon(message, error)
        this.#sink.onProtocolError(error)
        this.#serveReads()
      },
      onConsumed: (bytes) => {
        this.#bufferedBytes -= bytes
        this.#updateFlow()
      }
    }
  }

  #inflationSettled (message: InboundMessage): void {
    const index = this.#inflating.indexOf(message)
    if (index !== -1) this.#inflating.splice(index, 1)
    // The codec outlives the socket until the messages received before the end are inflated.
    if (this.#socketClosed && this.#inflating.length === 0) this.#deflate!.close()
  }

  // ---- Control handlers ----------------------------------------------------------------------

  /** Replaces what happens when a close frame arrives; null restores the default (echo the code, then end TCP). */
  setCloseHandler (handler: CloseHandler | null): void {
    this.#closeHandler = handler ?? undefined
  }

  /** Replaces what happens when a ping arrives; null restores the default (answer with a pong of the same payload). */
  setPingHandler (handler: ControlHandler | null): void {
    this.#pingHandler = handler ?? undefined
  }

  /** Replaces what happens when a pong arrives; null restores the default (nothing). */
  setPongHandler (handler: ControlHandler | null): void {
    this.#pongHandler = handler ?? undefined
  }

  readonly #defaultPing = (data: Buffer): void => {
    if (this.#closeSent || this.#writeError !== undefined) return
    this.#writeFrame(PongMessage, data)
  }

  #runControlHandler (handler: ControlHandler | undefined, data: Buffer, fallback: ControlHandler | undefined): void {
    const chosen = handler ?? fallback
    if (chosen === undefined) return
    try {
      const result = chosen(data)
      if (result !== undefined) result.catch((error: unknown) => { this.#failRead(asError(error)) })
    } catch (error) {
      this.#failRead(asError(error))
    }
  }

  #onCloseFrame (code: number, text: string): void {
    this.#closeReceived = true
    this.#failRead(new CloseError(code, text))
    // Messages that arrived before the close are already resolved to readers; answering on the
    // next turn lets the application's replies to them (an echo, say) go out before our close.
    setImmediate(() => { this.#runCloseHandler(code, text) })
  }

  #runCloseHandler (code: number, text: string): void {
    const handler = this.#closeHandler
    if (handler === undefined) {
      // gorilla's default: echo the code without a reason.
      // Not awaited: close() resolves when the socket has closed, and never rejects.
      if (!this.#closeStarted) this.close(code, '')
    } else {
      try {
        const result = handler(code, text)
        if (result !== undefined) result.catch(() => {})
      } catch {}
    }
    if (this.#closeSent) this.#endSocket()
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
      if (blocked !== undefined) return Promise.reject(blocked)
      const payload = toPayload(data)
      if (payload === undefined) return Promise.reject(new UsageError(BAD_PAYLOAD))
      const deflate = this.#deflate
      if (deflate !== undefined && this.#compressWrites && deflate.shouldCompress(payloadLength(payload))) {
        const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
        const queued = this.#enqueueWrite<void>(async () => {
          const compressed = await deflate.compress(bytes)
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
    return Promise.reject(new UsageError(`bad message type ${String(type)}`))
  }

  /** Sends `value` as a JSON text message (no trailing newline, unlike gorilla's encoder). */
  writeJSON (value: unknown): Promise<void> {
    const text = JSON.stringify(value)
    if (text === undefined) return Promise.reject(new UsageError('value has no JSON representation'))
    return this.writeMessage(TextMessage, text)
  }

  /** Sends a message framed once by a PreparedMessage; the same bytes serve every server connection. */
  writePreparedMessage (message: PreparedMessage): Promise<void> {
    if (message.type >= CloseMessage) return this.writeControl(message.type as ControlMessageType, message.data)
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return Promise.reject(blocked)
    const deflate = this.#deflate
    if (deflate !== undefined && this.#compressWrites && deflate.shouldCompress(message.data.length)) {
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
    const run = (): boolean => this.#write(message.frameFor(this.isServer))
    if (this.#writeBusy()) return this.#enqueueWrite(run, undefined)
    return this.#afterWrite(run())
  }

  /**
   * Resolves with a writer for one message of `type`: `write(chunk)` sends fragments of at most
   * `writeBufferSize` bytes and `close()` sends the final frame. Other writes wait until it closes;
   * control frames still go out between its fragments.
   */
  nextWriter (type: DataMessageType): Promise<MessageWriter> {
    if (type !== TextMessage && type !== BinaryMessage) return Promise.reject(new UsageError(`nextWriter needs a data message type, got ${String(type)}`))
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return Promise.reject(blocked)
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
      return Promise.reject(new UsageError(`bad control message type ${String(type)}`))
    }
    const converted = toPayload(data)
    if (converted === undefined) return Promise.reject(new UsageError(BAD_PAYLOAD))
    const payload = typeof converted === 'string' ? Buffer.from(converted) : converted
    if (payload.length > MAX_CONTROL_PAYLOAD) return Promise.reject(new UsageError(`control payload of ${payload.length} bytes, at most 125 allowed`))
    if (deadline !== undefined && +deadline <= Date.now()) return Promise.reject(new TimeoutError('control write deadline exceeded'))
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return Promise.reject(blocked)
    if (type === CloseMessage) this.#closeSent = true
    const flushed = this.#writeFrame(type, payload)
    if (type === CloseMessage) this.#afterCloseSent()
    if (flushed) return RESOLVED
    if (deadline !== undefined) this.#armWriteTimer(+deadline)
    return this.#waitDrain()
  }

  /** Every later write must be flushed by `deadline` (a Date or epoch ms; null clears), or the connection is torn down. */
  setWriteDeadline (deadline: Date | number | null): void {
    this.#writeDeadline = deadline === null ? 0 : +deadline
    if (this.#writeDeadline === 0 && this.#writeTimer !== undefined) {
      clearTimeout(this.#writeTimer)
      this.#writeTimer = undefined
    }
  }

  #checkWritable (): Error | undefined {
    if (this.#writeError !== undefined) return this.#writeError
    if (this.#closeSent || this.#closeStarted) return new CloseSentError()
    if (this.#writeDeadline !== 0 && this.#writeDeadline <= Date.now()) {
      this.#writeError = new TimeoutError('write deadline exceeded')
      return this.#writeError
    }
    return undefined
  }

  #writeFrame (opcode: number, payload: Buffer | string): boolean {
    if (this.isServer && typeof payload !== 'string' && payload.length > MERGE_LIMIT) {
      // Big payloads go out beside their header (one writev while corked) instead of being copied.
      this.#write(encodeHeader(opcode, true, false, payload.length))
      return this.#write(payload)
    }
    return this.#write(encodeFrame(opcode, true, false, payload, !this.isServer))
  }

  /**
   * Writes with the socket corked until the end of this tick, so the frames an application writes
   * in one burst (echoing a batch of messages, say) leave in one system call.
   */
  #write (bytes: Buffer): boolean {
    if (!this.#corked) {
      this.#corked = true
      this.#socket.cork()
      process.nextTick(this.#uncork)
    }
    return this.#socket.write(bytes)
  }

  readonly #uncork = (): void => {
    this.#corked = false
    this.#socket.uncork()
  }

  #afterWrite (flushed: boolean): Promise<void> {
    if (flushed) return RESOLVED
    if (this.#writeDeadline !== 0) this.#armWriteTimer(this.#writeDeadline)
    return this.#waitDrain()
  }

  /** The shared promise of the next 'drain'; only called right after a write, which never fails synchronously while corked. */
  #waitDrain (): Promise<void> {
    if (this.#drain === undefined) {
      this.#drain = new Promise<void>((resolve, reject) => {
        this.#drainResolve = resolve
        this.#drainReject = reject
      })
    }
    return this.#drain
  }

  #armWriteTimer (deadline: number): void {
    // Several waiting writes may have deadlines (a writeControl's own, say): the soonest wins.
    if (this.#writeTimer !== undefined) {
      if (deadline >= this.#writeTimerDeadline) return
      clearTimeout(this.#writeTimer)
    }
    this.#writeTimerDeadline = deadline
    this.#writeTimer = setTimeout(() => {
      // Armed only after a write that did not flush, and cleared by 'drain' or 'finish': bytes still wait.
      this.#writeTimer = undefined
      this.#writeError ??= new TimeoutError('write deadline exceeded')
      this.#socket.destroy()
    }, Math.max(0, deadline - Date.now()))
    this.#writeTimer.unref()
  }

  readonly #onDrain = (): void => {
    if (this.#writeTimer !== undefined) {
      clearTimeout(this.#writeTimer)
      this.#writeTimer = undefined
    }
    const resolve = this.#drainResolve
    this.#drain = undefined
    this.#drainResolve = undefined
    this.#drainReject = undefined
    if (resolve !== undefined) resolve()
  }

  /** Why a write accepted earlier can no longer go out (a close frame or a failure came first). */
  #writeEnded (): Error | undefined {
    return this.#writeError ?? (this.#closeSent ? new CloseSentError() : undefined)
  }

  /** After a compression: a close frame written meanwhile must stay the last frame. */
  #throwIfWriteEnded (): void {
    const ended = this.#writeEnded()
    if (ended !== undefined) throw ended
  }

  /** Whether a write must queue behind an open writer, a compression or earlier queued writes. */
  #writeBusy (): boolean {
    return this.#writer !== undefined || this.#compressing || this.#writeQueue.length > 0
  }

  /** Turns compression of later messages on or off; it has no effect when none was negotiated. */
  enableWriteCompression (enable: boolean): void {
    this.#compressWrites = enable
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
    return new Promise<T>((resolve, reject) => {
      this.#writeQueue.push({ run, writer, resolve, reject })
    })
  }

  /** Runs queued writes in order until the queue is empty or a writer takes the connection. */
  #flushQueue (): void {
    const queue = this.#writeQueue
    while (this.#writer === undefined && !this.#compressing && queue.length > 0) {
      const item = queue.shift()!
      if (this.#writeError !== undefined) {
        item.reject(this.#writeError)
        continue
      }
      if (this.#closeSent) {
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
      this.#compressing = true
      result.then((flushed) => {
        this.#compressing = false
        this.#afterWrite(flushed).then(item.resolve, item.reject)
        this.#flushQueue()
      }, (error: unknown) => {
        this.#compressing = false
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
        if (!flushed && this.#writeDeadline !== 0) this.#armWriteTimer(this.#writeDeadline)
        return flushed
      },
      startCompression: (size) => {
        const deflate = this.#deflate
        return deflate !== undefined && this.#compressWrites && deflate.shouldCompress(size) ? deflate.startCompress() : undefined
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
    if (this.#closeStarted || this.#socketClosed) return this.closed
    const payload = formatCloseMessage(code, truncateUtf8(reason, MAX_CONTROL_PAYLOAD - 2))
    this.#closeStarted = true
    this.#armCloseTimer()
    if (this.#closeSent || this.#writeError !== undefined) {
      this.#endSocket()
      return this.closed
    }
    // #flushQueue refuses queued writes once a close frame is out, so this runs at most once.
    const send = (): boolean => {
      this.#closeSent = true
      const flushed = this.#writeFrame(CloseMessage, payload)
      this.#afterCloseSent()
      return flushed
    }
    if (this.#writeBusy()) {
      this.#enqueueWrite(send, undefined).catch(() => {})
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
    if (this.#closeReceived) this.#endSocket()
  }

  #armCloseTimer (): void {
    if (this.#closeTimer !== undefined || this.#socketClosed) return
    this.#closeTimer = setTimeout(() => { this.#socket.destroy() }, this.#options.closeTimeout)
    this.#closeTimer.unref()
  }

  /** Ends TCP once both close frames are out; what was written before is flushed first. */
  #endSocket (): void {
    this.#armCloseTimer()
    if (!this.#socket.writableEnded) this.#socket.end()
  }

  /** Fails the connection (RFC 6455 §7.1.7): close frame with the error's code, then end TCP. */
  #failConnection (error: ProtocolError): void {
    this.#pendingFailure = undefined
    if (!this.#closeSent && this.#writeError === undefined) {
      this.#closeSent = true
      this.#closeStarted = true
      this.#writeFrame(CloseMessage, formatCloseMessage(error.closeCode, truncateUtf8(error.message, MAX_CONTROL_PAYLOAD - 2)))
    }
    this.#endSocket()
  }

  // ---- Socket events ----------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    this.#parser.push(chunk)
  }

  readonly #onEnd = (): void => {
    this.#parser.stop()
    this.#failRead(new CloseError(1006, 'unexpected EOF'))
    this.#endSocket()
  }

  readonly #onError = (error: Error): void => {
    this.#parser.stop()
    this.#failRead(new CloseError(1006, error.message, { cause: error }))
    this.#failWrite(new WriteClosedError(`socket error: ${error.message}`))
  }

  readonly #onClose = (): void => {
    if (this.#socketClosed) return
    this.#socketClosed = true
    this.#parser.stop()
    this.#failRead(new CloseError(1006, 'unexpected EOF'))
    this.#failWrite(new WriteClosedError('connection closed'))
    if (this.#inflating.length === 0) this.#deflate?.close()
    for (const timer of [this.#closeTimer, this.#readTimer, this.#writeTimer]) {
      if (timer !== undefined) clearTimeout(timer)
    }
    this.#resolveClosed?.()
  }

  /** Makes the first write error permanent and fails every write waiting for the socket. */
  #failWrite (reason: Error): void {
    const error = this.#writeError ?? reason
    this.#writeError = error
    const reject = this.#drainReject
    this.#drain = undefined
    this.#drainResolve = undefined
    this.#drainReject = undefined
    if (reject !== undefined) reject(error)
    for (const item of this.#writeQueue.splice(0)) item.reject(error)
    this.#writer?.abort(error)
  }
}

function settle (read: PendingRead, value: unknown, error: Error | undefined): void {
  if (read.onAbort !== undefined) read.signal!.removeEventListener('abort', read.onAbort)
  if (error !== undefined) read.reject(error)
  else read.resolve(value)
}

function asError (value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}
