import type { Duplex } from 'node:stream'
import { type DataMessageType, TextMessage } from '../protocol/constants.js'
import { CloseError, ProtocolError, TimeoutError, UsageError, isCloseError, stackless } from '../protocol/errors.js'
import { FrameParser, type FrameParserOptions, type FrameSink } from '../protocol/parser.js'
import type { InflateTarget, MessageInflation, PerMessageDeflate } from '../deflate/codec.js'
import type { ResolvedConnOptions } from '../options.js'
import { RESOLVED, asError, noop, rejected } from '../settle.js'
import { InboundMessage, MessageReader, type ReaderOwner } from './message-reader.js'

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

/**
 * Called with each data message, whole and in order; a promise it returns holds the next message
 * back until it settles, any other value is ignored (so `(m) => conn.send(m.data)` is a handler).
 */
export type MessageHandler = (message: Message) => unknown

/** Called with the close code (1005 when none) and reason of a received close frame. */
export type CloseHandler = (code: number, text: string) => void | Promise<void>
/** Called with the payload of a received ping or pong. */
export type ControlHandler = (data: Buffer) => void | Promise<void>

export const enum ReadKind {
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

/** The handler of `Conn.onMessage` and the promise that says how its messages ended. */
interface HandlerSubscription {
  readonly handler: MessageHandler
  /** A call is running (its promise has not settled) or delivery has not started yet: the next message waits. */
  busy: boolean
  readonly resolve: () => void
  readonly reject: (error: Error) => void
  /** Told when the handler throws or rejects. */
  readonly failed: (error: Error) => void
  readonly signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

/** What the read side reports to the rest of the connection, in wire order. */
export interface ReadEvents {
  /** A ping arrived and no ping handler is set: answer it. */
  defaultPing (data: Buffer): void
  /** A valid close frame arrived; reads already fail with its CloseError. */
  closeFrame (code: number, text: string): void
  /** The peer broke a rule (in a frame or a compressed message); reads already fail with it. */
  protocolError (error: ProtocolError): void
}

/** What few connections use (control handlers, a deadline, a streaming reader); made on first use. */
interface ReadSettings {
  close: CloseHandler | undefined
  ping: ControlHandler | undefined
  pong: ControlHandler | undefined
  /** Sees every pong before `pong` does; set when the connection is made (the plugin's heartbeat). */
  pongObserver: ((data: Buffer) => void) | undefined
  deadline: NodeJS.Timeout | undefined
  /** The streaming reader of the message being read through nextReader. */
  streamReader: MessageReader | undefined
}

const NORMAL_ENDS = [1000, 1001, 1005]

/** The inflation bookkeeping of a connection with permessage-deflate. */
interface InflateState {
  readonly deflate: PerMessageDeflate
  /** The inflation of the compressed message whose frames are arriving. */
  current: MessageInflation | undefined
  /** A message whose frames all arrived and that still inflates; the parser holds input behind it. */
  ending: InboundMessage | undefined
  /**
   * Compressed bytes handed to the inflater and not yet consumed, plus one for an end of message
   * not yet inflated; while above 0 the parser holds later frames back.
   */
  backlog: number
  /** The read error to report once input held at the socket's end is parsed. */
  inputEndError: Error | undefined
}

/** State bits of the read side, packed in one number. */
const enum ReadFlag {
  /** The socket is paused because too many unread bytes wait. */
  Paused = 1,
  /**
   * The socket delivers no more, but the parser holds input behind an inflation for a reader
   * that waits: the end of input is reported once that input is parsed.
   */
  InputEnded = 2,
  SocketClosed = 4,
  DeflateReleased = 8,
  /** Our automatic replies (pongs) wait for the socket to drain: read nothing more until then. */
  WaitingForDrain = 16
}

/**
 * The read side of a connection: the frame parser's sink, the inbox of complete or started
 * messages nobody took yet, the reads waiting for one, TCP flow control (the read-ahead),
 * inflation of compressed messages and the control handlers. Reads are served in call order;
 * after a failure every read rejects with the same error, once the messages that came before it
 * were delivered.
 */
export class ConnReader implements FrameSink, ReaderOwner {
  readonly parser: FrameParser
  readonly #socket: Duplex
  readonly #options: ResolvedConnOptions
  readonly #events: ReadEvents
  #flags = 0

  #inboxHead: InboundMessage | undefined
  #inboxTail: InboundMessage | undefined
  /** The message whose frames are arriving. */
  #current: InboundMessage | undefined
  #readHead: PendingRead | undefined
  #readTail: PendingRead | undefined
  /** The message handler, which takes every message instead of reads while it is set. */
  #handler: HandlerSubscription | undefined
  #error: Error | undefined
  /** Bytes of unread messages (compressed ones until inflated): what the read-ahead bounds. */
  #bufferedBytes = 0

  /** Made only when permessage-deflate was negotiated. */
  readonly #inflate: InflateState | undefined
  #settings: ReadSettings | undefined

  constructor (socket: Duplex, isServer: boolean, options: ResolvedConnOptions, deflate: PerMessageDeflate | undefined, events: ReadEvents) {
    this.#socket = socket
    this.#options = options
    this.#events = events
    if (deflate !== undefined) this.#inflate = { deflate, current: undefined, ending: undefined, backlog: 0, inputEndError: undefined }
    this.parser = new FrameParser(this, parserOptions(options, isServer, deflate !== undefined))
  }

  /** Changes this connection's read limit (its parser's options become its own). */
  setReadLimit (limit: number): void {
    this.parser.options = { ...this.parser.options, readLimit: limit }
  }

  /** The permanent read error, once there is one. */
  get error (): Error | undefined {
    return this.#error
  }

  #is (flag: ReadFlag): boolean {
    return (this.#flags & flag) !== 0
  }

  #set (flag: ReadFlag, on: boolean): void {
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag
  }

  // ---- Reads ------------------------------------------------------------------------------------

  /** Queues a read of `kind`; see Conn's readMessage, nextReader and iterator. */
  enqueue<T> (kind: ReadKind, signal: AbortSignal | undefined): Promise<T> {
    if (this.#handler !== undefined) return rejected(new UsageError('a message handler (onMessage) takes every message: read once it has ended'))
    // A new read abandons the rest of the message a previous streaming reader left.
    this.#settings?.streamReader?.discard()
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
      if (this.#is(ReadFlag.InputEnded) && this.#readHead !== undefined) this.#resumeInput()
    })
  }

  /**
   * Hands every message to `handler` from now on (see Conn.onMessage); `failed` is told when the
   * handler throws or rejects.
   */
  handle (handler: MessageHandler, signal: AbortSignal | undefined, failed: (error: Error) => void): Promise<void> {
    if (this.#handler !== undefined || this.#readHead !== undefined) {
      return rejected(new UsageError(this.#handler !== undefined ? 'a message handler is already set' : 'reads are waiting: set a message handler only when none is'))
    }
    if (signal?.aborted === true) return rejected(signal.reason)
    this.#settings?.streamReader?.discard()
    let subscription!: HandlerSubscription
    const done = new Promise<void>((resolve, reject) => {
      subscription = { handler, busy: true, resolve, reject, failed, signal, onAbort: undefined }
    })
    // Nobody has to await it: how the messages ended is also seen in `closed` and the close code.
    done.catch(noop)
    if (signal !== undefined) {
      // Removed when the subscription ends, so it only ever fires for the current handler.
      subscription.onAbort = () => {
        this.#handler = undefined
        subscription.reject(signal.reason)
        this.#updateFlow()
      }
      signal.addEventListener('abort', subscription.onAbort, { once: true })
    }
    this.#handler = subscription
    // Messages that already wait are handed over from a microtask, never inside this call.
    queueMicrotask(() => {
      subscription.busy = false
      if (this.#handler !== subscription) return
      this.#serveReads()
      if (this.#is(ReadFlag.InputEnded)) this.#resumeInput()
    })
    return done
  }

  #serveHandler (subscription: HandlerSubscription): void {
    while (this.#handler === subscription && !subscription.busy) {
      const message = this.#inboxHead
      if (message === undefined) {
        const error = this.#error
        if (error !== undefined) this.#endHandler(subscription, error)
        return
      }
      if (!message.done) return
      this.#shiftInbox()
      this.#bufferedBytes -= message.bytes
      this.#callHandler(subscription, message.type, message.takeAll())
    }
  }

  #callHandler (subscription: HandlerSubscription, type: DataMessageType, data: Buffer): void {
    let result: unknown
    try {
      result = subscription.handler({ type, data })
    } catch (error) {
      this.#handlerFailed(subscription, asError(error))
      return
    }
    const promise = result as Partial<PromiseLike<unknown>> | null | undefined
    // A write that the socket took at once returns RESOLVED: nothing to wait for, not even a microtask.
    if (promise === RESOLVED || typeof promise?.then !== 'function') return
    subscription.busy = true
    promise.then(() => {
      subscription.busy = false
      if (this.#handler === subscription) this.#serveReads()
    }, (error: unknown) => { this.#handlerFailed(subscription, asError(error)) })
  }

  /** Ends a subscription: it resolves at a normal close, like the async iterator, and rejects otherwise. */
  #endHandler (subscription: HandlerSubscription, error: Error): void {
    this.#unsubscribe(subscription)
    if (isCloseError(error, ...NORMAL_ENDS)) subscription.resolve()
    else subscription.reject(error)
  }

  #handlerFailed (subscription: HandlerSubscription, error: Error): void {
    // After an abort the application took the messages back; a late failure is its own call's.
    if (this.#handler !== subscription) return
    this.#unsubscribe(subscription)
    subscription.reject(error)
    subscription.failed(error)
    this.#updateFlow()
  }

  #unsubscribe (subscription: HandlerSubscription): void {
    this.#handler = undefined
    if (subscription.onAbort !== undefined) subscription.signal!.removeEventListener('abort', subscription.onAbort)
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
    const subscription = this.#handler
    if (subscription !== undefined) {
      this.#serveHandler(subscription)
      this.#updateFlow()
      return
    }
    for (let read = this.#readHead; read !== undefined; read = this.#readHead) {
      const message = this.#inboxHead
      if (message === undefined) {
        const error = this.#error
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
        const reader = new MessageReader(message, this)
        this.settings.streamReader = reader
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
    if (this.#is(ReadFlag.SocketClosed)) return
    const head = this.#readHead
    const handler = this.#handler
    const wantsWhole = head !== undefined ? head.kind !== ReadKind.Stream : handler !== undefined && !handler.busy
    const waitingForWhole = wantsWhole && this.#inboxHead !== undefined && this.#inboxHead === this.#inboxTail
    const readAhead = this.#options.readBufferSize
    const pause = (this.#bufferedBytes > readAhead && !waitingForWhole) || this.parser.heldBytes > readAhead || this.#is(ReadFlag.WaitingForDrain)
    if (pause !== this.#is(ReadFlag.Paused)) {
      this.#set(ReadFlag.Paused, pause)
      if (pause) this.#socket.pause()
      else this.#socket.resume()
    }
  }

  /** Stops reading from the socket until `drained`: replies to the peer pile up unread. */
  waitForDrain (): void {
    this.#set(ReadFlag.WaitingForDrain, true)
    this.#updateFlow()
  }

  /** The socket drained what was written: reading may go on. */
  drained (): void {
    if (!this.#is(ReadFlag.WaitingForDrain)) return
    this.#set(ReadFlag.WaitingForDrain, false)
    this.#updateFlow()
  }

  /** A streaming reader took `bytes` bytes: reading from the socket may go on. */
  consumed (bytes: number): void {
    this.#bufferedBytes -= bytes
    this.#updateFlow()
  }

  /** A streaming reader is finished with its message. */
  released (reader: MessageReader): void {
    const settings = this.settings
    if (settings.streamReader === reader) settings.streamReader = undefined
  }

  /** Makes `error` the permanent read error: queued complete messages are still delivered first. */
  fail (error: Error): void {
    if (this.#error !== undefined) return
    this.#error = error
    clearTimeout(this.#settings?.deadline)
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

  /** Fails reads at `deadline` (epoch ms), or clears the deadline with null. */
  setDeadline (deadline: number | null): void {
    const settings = this.settings
    clearTimeout(settings.deadline)
    settings.deadline = undefined
    if (deadline === null) return
    const timer = setTimeout(() => {
      settings.deadline = undefined
      this.fail(new TimeoutError('read deadline exceeded'))
    }, Math.max(0, deadline - Date.now()))
    timer.unref()
    settings.deadline = timer
  }

  // ---- The parser's sink ------------------------------------------------------------------------

  onWholeMessage (type: DataMessageType, payload: Buffer): void {
    if (this.#error !== undefined) return
    const subscription = this.#handler
    if (subscription !== undefined && !subscription.busy && this.#inboxHead === undefined) {
      // The event-style path: no message object, no queue, no promise.
      this.#callHandler(subscription, type, payload)
      return
    }
    const read = this.#readHead
    if (read !== undefined && this.#inboxHead === undefined && read.kind !== ReadKind.Stream) {
      // The common case, a reader already waiting: no message object, no queue.
      this.#shiftRead()
      settleValue(read, { type, data: payload })
      return
    }
    const message = new InboundMessage(type, false)
    message.push(payload)
    message.done = true
    this.#pushInbox(message)
    this.#bufferedBytes += payload.length
    if (read !== undefined || subscription !== undefined) this.#serveReads()
    else this.#updateFlow()
  }

  onMessageStart (type: DataMessageType, compressed: boolean): void {
    const message = new InboundMessage(type, compressed)
    this.#current = message
    // Every compressed message is inflated, a discarded one too: its frames still arrive.
    if (compressed) {
      const inflate = this.#inflate!
      inflate.current = inflate.deflate.inflateMessage(this.#inflateInto(message), type === TextMessage && this.#options.validateUtf8)
    }
    if (this.#error !== undefined) {
      message.discarded = true
      return
    }
    this.#pushInbox(message)
    if (this.#readHead !== undefined && this.#readHead.kind === ReadKind.Stream) this.#serveReads()
  }

  onMessageData (piece: Buffer): void {
    const message = this.#current!
    if (message.compressed) {
      // Inflated even when nobody wants the message: the peer's compression history needs it.
      const inflate = this.#inflate!
      this.#bufferedBytes += piece.length
      inflate.backlog += piece.length
      inflate.current!.write(piece)
      this.#holdInputWhileInflating()
      this.#updateFlow()
      return
    }
    if (message.discarded) return
    this.#deliver(message, piece)
  }

  onMessageEnd (): void {
    const message = this.#current!
    this.#current = undefined
    if (message.compressed) {
      // One whose inflation already failed (behind an earlier failure, say) has nothing left to wait for.
      const inflate = this.#inflate!
      if (message.error === undefined) inflate.ending = message
      const inflation = inflate.current!
      inflate.current = undefined
      inflate.backlog++
      inflation.end()
      this.#holdInputWhileInflating()
      return
    }
    this.#messageDone(message)
  }

  onPing (data: Buffer): void {
    const handler = this.#settings?.ping
    if (handler === undefined) this.#events.defaultPing(data)
    else this.#runHandler(handler, data)
  }

  onPong (data: Buffer): void {
    const settings = this.#settings
    if (settings === undefined) return
    settings.pongObserver?.(data)
    if (settings.pong !== undefined) this.#runHandler(settings.pong, data)
  }

  onClose (code: number, text: string): void {
    if (this.#error === undefined) this.fail(stackless(() => new CloseError(code, text)))
    this.#events.closeFrame(code, text)
  }

  onProtocolError (error: ProtocolError): void {
    // Nothing received after the offending frame or message is acted on (an inflation failure
    // comes after the parser moved on).
    this.parser.stop()
    this.fail(error)
    if (this.#is(ReadFlag.InputEnded)) this.#endInput(undefined)
    this.#events.protocolError(error)
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
    else if (this.#readHead !== undefined || this.#handler !== undefined) this.#serveReads()
  }

  // ---- Control handlers -------------------------------------------------------------------------

  /** The control handlers and the deadline, made on first use. */
  get settings (): ReadSettings {
    this.#settings ??= {
      close: undefined, ping: undefined, pong: undefined, pongObserver: undefined, deadline: undefined, streamReader: undefined
    }
    return this.#settings
  }

  /** The application's close handler, if it set one. */
  get closeHandler (): CloseHandler | undefined {
    return this.#settings?.close
  }

  #runHandler (handler: ControlHandler, data: Buffer): void {
    try {
      const result = handler(data)
      if (result !== undefined) result.catch((error: unknown) => { this.fail(asError(error)) })
    } catch (error) {
      this.fail(asError(error))
    }
  }

  // ---- Inflation --------------------------------------------------------------------------------

  /** Where the inflated bytes of one compressed message go. */
  #inflateInto (message: InboundMessage): InflateTarget {
    return {
      onData: (chunk) => {
        if (message.error === undefined && !message.discarded) this.#deliver(message, chunk)
      },
      onEnd: () => {
        this.#inflate!.backlog--
        this.#inflationSettled(message)
        if (message.error === undefined) this.#messageDone(message)
        this.#resumeInput()
      },
      onError: (error) => {
        this.#inflate!.backlog = 0
        this.#inflationSettled(message)
        // The message may be whole on the wire already (no longer #current), so fail() would
        // leave it, and the reads waiting for it, in the inbox forever.
        this.#abandon(message, error)
        this.onProtocolError(error)
        this.#serveReads()
      },
      onConsumed: (bytes) => {
        this.#bufferedBytes -= bytes
        this.#inflate!.backlog -= bytes
        this.#resumeInput()
        this.#updateFlow()
      }
    }
  }

  #inflationSettled (message: InboundMessage): void {
    const inflate = this.#inflate!
    if (inflate.ending === message) inflate.ending = undefined
    this.#releaseDeflate()
  }

  /** Frees the zlib contexts once the socket is gone and nothing received before its end still inflates. */
  #releaseDeflate (): void {
    const inflate = this.#inflate
    if (inflate === undefined || !this.#is(ReadFlag.SocketClosed) || this.#is(ReadFlag.InputEnded | ReadFlag.DeflateReleased)) return
    if (inflate.ending === undefined) {
      this.#set(ReadFlag.DeflateReleased, true)
      inflate.deflate.close()
    }
  }

  /**
   * Holds later frames back while a compressed piece inflates on the thread pool, so that a frame
   * after a message that turns out corrupt (a ping, say) is never acted on; pieces inflated on
   * this thread finish before this is called and hold nothing.
   */
  #holdInputWhileInflating (): void {
    if (this.#inflate!.backlog > 0) this.parser.pause()
  }

  /**
   * Parses the input held behind an inflation once it has finished. After the socket's end, only
   * while a reader waits: input nobody asks for is not worth inflating.
   */
  #resumeInput (): void {
    const parser = this.parser
    const inflate = this.#inflate!
    if (!parser.isPaused || inflate.backlog > 0) return
    const ended = this.#is(ReadFlag.InputEnded)
    if (ended && !this.#readerWaiting()) return
    parser.resume()
    if (ended && !parser.isPaused) this.#endInput(inflate.inputEndError)
    this.#updateFlow()
  }

  #readerWaiting (): boolean {
    return this.#readHead !== undefined || this.#handler !== undefined || this.#settings?.streamReader !== undefined
  }

  // ---- The end of input -------------------------------------------------------------------------

  /**
   * The socket delivers no more input (`error` is the read error to report, 1006 by default).
   * Input held behind an inflation is still parsed for a reader waiting for it; otherwise it is
   * dropped, with the inflations nobody will read.
   */
  inputEnded (error: Error | undefined): void {
    if (this.#is(ReadFlag.InputEnded)) return
    const parser = this.parser
    if (parser.isPaused && !parser.isFailed && this.#readerWaiting()) {
      this.#set(ReadFlag.InputEnded, true)
      // Paused: only an inflation pauses the parser.
      this.#inflate!.inputEndError = error
      return
    }
    this.#endInput(error)
  }

  /** The socket closed: no more pausing, and the codec goes once nothing inflates any more. */
  socketClosed (): void {
    this.#set(ReadFlag.SocketClosed, true)
    this.inputEnded(undefined)
    clearTimeout(this.#settings?.deadline)
  }

  /** Reports the end of input to readers (1006 when no close frame came) and drops what still inflates. */
  #endInput (error: Error | undefined): void {
    this.#set(ReadFlag.InputEnded, false)
    this.parser.stop()
    if (this.#error === undefined) this.fail(error ?? stackless(() => new CloseError(1006, 'unexpected EOF')))
    const inflate = this.#inflate
    if (inflate === undefined) return
    inflate.inputEndError = undefined
    const ending = inflate.ending
    if (ending !== undefined) {
      // Whole on the wire but not inflated: nobody waited for it, and nobody will get it.
      inflate.ending = undefined
      inflate.backlog = 0
      this.#abandon(ending, this.#error!)
      this.#set(ReadFlag.DeflateReleased, true)
      inflate.deflate.close()
      this.#serveReads()
    }
    this.#releaseDeflate()
  }
}

/**
 * The parser options of connections made from the same options, role and compression: one shared
 * object (connections of one Upgrader or Dialer), until a connection changes its read limit.
 */
const sharedParserOptions = new WeakMap<ResolvedConnOptions, FrameParserOptions[]>()

function parserOptions (options: ResolvedConnOptions, isServer: boolean, allowRsv1: boolean): FrameParserOptions {
  let variants = sharedParserOptions.get(options)
  if (variants === undefined) {
    variants = []
    sharedParserOptions.set(options, variants)
  }
  const index = (isServer ? 2 : 0) + (allowRsv1 ? 1 : 0)
  variants[index] ??= {
    isServer,
    readLimit: options.readLimit,
    maxFragments: options.maxFragments,
    allowRsv1,
    validateUtf8: options.validateUtf8
  }
  return variants[index]
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
