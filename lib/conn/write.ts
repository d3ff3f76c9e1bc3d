import type { Duplex } from 'node:stream'
import type { PerMessageDeflate } from '../deflate/codec.js'
import type { MessageDeflation } from '../deflate/compressor.js'
import type { ResolvedConnOptions } from '../options.js'
import type { PreparedMessage } from '../prepared-message.js'
import { CloseMessage, MAX_CONTROL_PAYLOAD, PongMessage, type ControlMessageType, type DataMessageType } from '../protocol/constants.js'
import { CloseSentError, TimeoutError, UsageError, WriteClosedError } from '../protocol/errors.js'
import { BAD_PAYLOAD, MERGE_LIMIT, encodeFrame, encodeHeader, payloadLength, toPayload, type Payload } from '../protocol/framing.js'
import { RESOLVED, asError, noop, rejected } from '../settle.js'
import { MessageWriter, type WriterOwner } from './message-writer.js'
import { uncorkAtTickEnd, type TickCorked } from './tick-cork.js'

interface QueuedWrite {
  /**
   * Writes and reports whether the socket took the bytes without backpressure (a promise of that
   * when compression comes first); undefined for a writer.
   */
  run: (() => boolean | Promise<boolean>) | undefined
  writer: MessageWriter | undefined
  /** Payload bytes this write holds until it runs (counted in `bufferedAmount`). */
  size: number
  resolve: (value: any) => void
  reject: (error: Error) => void
  next: QueuedWrite | undefined
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (error: Error) => void
}

/** Write deadlines: made on first use, since most connections never set one. */
interface WriteTimer {
  timer: NodeJS.Timeout | undefined
  /** When the armed timer fires (the soonest deadline of the waiting writes). */
  at: number
  /** setWriteDeadline's value, epoch ms; 0 = none. */
  deadline: number
}

/** State bits of the write side, packed in one number. */
const enum WriteFlag {
  CompressWrites = 1,
  /** The socket is corked until the end of this tick. */
  Corked = 2,
  /** A compression for the write at the head of the queue is running; later writes wait. */
  Compressing = 4,
  /** Our close frame was written: nothing may follow it. */
  CloseSent = 8,
  /** close() or a failure started the closing handshake: new writes are refused. */
  Closing = 16
}

/** What became of a message offered by `send()` or a publish; see `ConnWriter.admit`. */
export const enum Admission {
  /** The connection takes it. */
  Accepted,
  /** Over `maxBufferedAmount` with the `'drop'` policy: skipped and counted. */
  Dropped,
  /** Over `maxBufferedAmount` with the `'close'` policy: the caller closes the connection. */
  OverLimit,
  /** The connection is closing or failed: nothing more can be written. */
  NotWritable
}

/**
 * The write side of a connection: every frame goes to the socket through `#send`, which corks the
 * socket until the end of the tick and arms the write deadline, whether it is a whole message, a
 * prepared one, a control frame or a fragment of a `MessageWriter`. Writes queue behind an open
 * writer or a running compression so frames of different messages never interleave; the first
 * failure becomes the error of every later write.
 */
export class ConnWriter implements TickCorked, WriterOwner {
  readonly isServer: boolean
  readonly options: ResolvedConnOptions
  readonly socket: Duplex
  /** permessage-deflate, when it was negotiated. */
  readonly deflate: PerMessageDeflate | undefined
  #flags = WriteFlag.CompressWrites
  #error: Error | undefined
  /** The open streaming writer, which owns the connection's data frames until it closes. */
  #writer: MessageWriter | undefined
  #queueHead: QueuedWrite | undefined
  #queueTail: QueuedWrite | undefined
  /** Payload bytes held by queued writes. */
  #queuedBytes = 0
  /** Messages refused by the slow-consumer limit. */
  #dropped = 0
  #drain: Deferred | undefined
  #timer: WriteTimer | undefined

  constructor (socket: Duplex, isServer: boolean, options: ResolvedConnOptions, deflate: PerMessageDeflate | undefined) {
    this.socket = socket
    this.isServer = isServer
    this.options = options
    this.deflate = deflate
  }

  #is (flag: WriteFlag): boolean {
    return (this.#flags & flag) !== 0
  }

  #set (flag: WriteFlag, on: boolean): void {
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag
  }

  /** The permanent write error, once there is one. */
  get error (): Error | undefined {
    return this.#error
  }

  /** Whether our close frame was written. */
  get closeSent (): boolean {
    return this.#is(WriteFlag.CloseSent)
  }

  /** Bytes accepted for writing and not yet written to the kernel: queued payloads plus the socket's buffer. */
  get bufferedAmount (): number {
    return this.#queuedBytes + this.socket.writableLength
  }

  /** Messages `admit` refused for being over the slow-consumer limit. */
  get droppedMessages (): number {
    return this.#dropped
  }

  /**
   * Decides whether a message of `size` bytes nobody will wait for (a `send()` or a publish) may be
   * written, by the slow-consumer limit: a message offered when nothing is buffered always may.
   */
  admit (size: number): Admission {
    if (this.#error !== undefined || this.#is(WriteFlag.CloseSent | WriteFlag.Closing)) return Admission.NotWritable
    const limit = this.options.maxBufferedAmount
    if (limit === 0) return Admission.Accepted
    const buffered = this.bufferedAmount
    if (buffered === 0 || buffered + size <= limit) return Admission.Accepted
    this.#dropped++
    return this.options.slowConsumerPolicy === 'drop' ? Admission.Dropped : Admission.OverLimit
  }

  // ---- Messages -----------------------------------------------------------------------------------

  /** See Conn.writeMessage, for data message types. */
  writeMessage (type: DataMessageType, data: Payload): Promise<void> {
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return rejected(blocked)
    const payload = toPayload(data)
    if (payload === undefined) return rejected(new UsageError(BAD_PAYLOAD))
    const deflate = this.deflate
    if (deflate !== undefined && this.#is(WriteFlag.CompressWrites) && deflate.shouldCompress(payloadLength(payload))) {
      const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
      if (!this.#busy()) {
        // A small message is compressed at once on this thread (deflate's syncLimit).
        let compressed: Buffer | undefined
        try {
          compressed = deflate.compressSync(bytes)
        } catch (error) {
          return rejected(error)
        }
        if (compressed !== undefined) return this.#afterWrite(this.#send(encodeFrame(type, true, true, compressed, !this.isServer)))
      }
      const queued = this.#enqueue<void>(async () => {
        const compressed = deflate.compressSync(bytes) ?? await deflate.compress(bytes)
        this.#throwIfEnded()
        return this.#send(encodeFrame(type, true, true, compressed, !this.isServer))
      }, undefined, bytes.length)
      this.#flushQueue()
      return queued
    }
    if (this.#busy()) return this.#enqueue(() => this.#writeFrame(type, payload), undefined, payloadLength(payload))
    return this.#afterWrite(this.#writeFrame(type, payload))
  }

  /** See Conn.writePreparedMessage, for data message types. */
  writePrepared (message: PreparedMessage): Promise<void> {
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return rejected(blocked)
    const deflate = this.deflate
    if (deflate !== undefined && this.#is(WriteFlag.CompressWrites) && deflate.shouldCompress(message.data.length)) {
      const queued = this.#enqueue<void>(async () => {
        // Compressed once for every connection with the same level and window, then sent as is.
        const frame = await message.compressedFrameFor(this.isServer, deflate.level, deflate.sendWindowBits)
        this.#throwIfEnded()
        deflate.standaloneSent()
        return this.#send(frame)
      }, undefined, message.data.length)
      this.#flushQueue()
      return queued
    }
    if (this.#busy()) return this.#enqueue(() => this.#send(message.frameFor(this.isServer)), undefined, message.data.length)
    return this.#afterWrite(this.#send(message.frameFor(this.isServer)))
  }

  /** See Conn.nextWriter. */
  nextWriter (type: DataMessageType): Promise<MessageWriter> {
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return rejected(blocked)
    const writer = new MessageWriter(type, this)
    if (this.#busy()) return this.#enqueue(undefined, writer, 0)
    this.#writer = writer
    return Promise.resolve(writer)
  }

  /** See Conn.writeControl; `payload` is already checked to be at most 125 bytes. */
  writeControl (type: ControlMessageType, payload: Buffer, deadline: number | undefined): Promise<void> {
    if (deadline !== undefined && deadline <= Date.now()) return rejected(new TimeoutError('control write deadline exceeded'))
    const blocked = this.#checkWritable()
    if (blocked !== undefined) return rejected(blocked)
    if (type === CloseMessage) this.#set(WriteFlag.CloseSent, true)
    const flushed = this.#writeFrame(type, payload)
    if (flushed) return RESOLVED
    if (deadline !== undefined) this.#armTimer(deadline)
    return this.#waitDrain()
  }

  /**
   * Answers a ping, unless our close frame is out or the write side failed; false when the socket
   * is over its high-water mark (the peer does not read what we send).
   */
  pong (data: Buffer): boolean {
    if (this.#is(WriteFlag.CloseSent) || this.#error !== undefined) return true
    return this.#writeFrame(PongMessage, data)
  }

  /**
   * Sends our close frame after every write accepted before it, and calls `sent` right after;
   * refuses new writes from now on. The caller checked that no close frame is out and writing works.
   */
  sendCloseAfterQueued (payload: Buffer, sent: () => void): void {
    this.#set(WriteFlag.Closing, true)
    // #flushQueue refuses queued writes once a close frame is out, so this runs at most once.
    const send = (): boolean => {
      this.#set(WriteFlag.CloseSent, true)
      const flushed = this.#writeFrame(CloseMessage, payload)
      sent()
      return flushed
    }
    if (this.#busy()) this.#enqueue(send, undefined, 0)
    else send()
  }

  /** Sends a close frame at once, ahead of queued writes (failing the connection), unless one is out or writing failed. */
  sendCloseNow (payload: Buffer): void {
    this.#set(WriteFlag.Closing, true)
    if (this.#is(WriteFlag.CloseSent) || this.#error !== undefined) return
    this.#set(WriteFlag.CloseSent, true)
    this.#writeFrame(CloseMessage, payload)
  }

  /** Turns compression of later messages on or off. */
  enableCompression (enable: boolean): void {
    this.#set(WriteFlag.CompressWrites, enable)
  }

  // ---- Deadlines ---------------------------------------------------------------------------------

  /** Every later write must be flushed by `deadline` (epoch ms; 0 clears), or the connection is torn down. */
  setDeadline (deadline: number): void {
    if (deadline === 0 && this.#timer === undefined) return
    const timer = this.#timer ??= { timer: undefined, at: 0, deadline: 0 }
    timer.deadline = deadline
    if (deadline === 0 && timer.timer !== undefined) {
      clearTimeout(timer.timer)
      timer.timer = undefined
    }
  }

  #armTimer (deadline: number): void {
    const timer = this.#timer ??= { timer: undefined, at: 0, deadline: 0 }
    // Several waiting writes may have deadlines (a writeControl's own, say): the soonest wins.
    if (timer.timer !== undefined) {
      if (deadline >= timer.at) return
      clearTimeout(timer.timer)
    }
    timer.at = deadline
    timer.timer = setTimeout(() => {
      // Armed only after a write that did not flush, and cleared by 'drain' or 'finish': bytes still wait.
      timer.timer = undefined
      this.#error ??= new TimeoutError('write deadline exceeded')
      this.socket.destroy()
    }, Math.max(0, deadline - Date.now()))
    timer.timer.unref()
  }

  #checkWritable (): Error | undefined {
    if (this.#error !== undefined) return this.#error
    if (this.#is(WriteFlag.CloseSent | WriteFlag.Closing)) return new CloseSentError()
    const deadline = this.#timer?.deadline ?? 0
    if (deadline !== 0 && deadline <= Date.now()) {
      this.#error = new TimeoutError('write deadline exceeded')
      return this.#error
    }
    return undefined
  }

  // ---- The one way to the socket ---------------------------------------------------------------

  #writeFrame (opcode: number, payload: Buffer | string): boolean {
    if (this.isServer && typeof payload !== 'string' && payload.length > MERGE_LIMIT) {
      // Big payloads go out beside their header (one writev at the end of the tick) instead of being copied.
      this.#send(encodeHeader(opcode, true, false, payload.length))
      return this.#send(payload)
    }
    return this.#send(encodeFrame(opcode, true, false, payload, !this.isServer))
  }

  /**
   * Writes with the socket corked until the end of this tick, so the frames written in one burst
   * (echoing a batch of received messages, say) leave in one system call; `written` is called
   * when the socket has written the bytes or failed.
   */
  #send (bytes: Buffer, written?: (error: Error | null | undefined) => void): boolean {
    if (!this.#is(WriteFlag.Corked)) {
      this.#flags |= WriteFlag.Corked
      this.socket.cork()
      uncorkAtTickEnd(this)
    }
    return this.socket.write(bytes, written)
  }

  uncorkAtTickEnd (): void {
    this.#flags &= ~WriteFlag.Corked
    this.socket.uncork()
  }

  #afterWrite (flushed: boolean): Promise<void> {
    if (flushed) return RESOLVED
    const deadline = this.#timer?.deadline ?? 0
    if (deadline !== 0) this.#armTimer(deadline)
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

  /** The socket's 'drain' (or 'finish'): every write waiting for it goes on. */
  drained (): void {
    const timer = this.#timer
    if (timer?.timer !== undefined) {
      clearTimeout(timer.timer)
      timer.timer = undefined
    }
    const drain = this.#drain
    this.#drain = undefined
    drain?.resolve()
  }

  /** Why a write accepted earlier can no longer go out (a close frame or a failure came first). */
  writeEnded (): Error | undefined {
    return this.#error ?? (this.#is(WriteFlag.CloseSent) ? new CloseSentError() : undefined)
  }

  /** After a compression: a close frame written meanwhile must stay the last frame. */
  #throwIfEnded (): void {
    const ended = this.writeEnded()
    if (ended !== undefined) throw ended
  }

  // ---- The queue ---------------------------------------------------------------------------------

  /** Whether a write must queue behind an open writer, a compression or earlier queued writes. */
  #busy (): boolean {
    return this.#writer !== undefined || this.#is(WriteFlag.Compressing) || this.#queueHead !== undefined
  }

  #enqueue<T> (run: (() => boolean | Promise<boolean>) | undefined, writer: MessageWriter | undefined, size: number): Promise<T> {
    this.#queuedBytes += size
    const queued = new Promise<T>((resolve, reject) => {
      const item: QueuedWrite = { run, writer, size, resolve, reject, next: undefined }
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
    this.#queuedBytes -= item.size
    this.#queueHead = item.next
    if (item.next === undefined) this.#queueTail = undefined
    item.next = undefined
    return item
  }

  /** Runs queued writes in order until the queue is empty or a writer takes the connection. */
  #flushQueue (): void {
    while (this.#writer === undefined && !this.#is(WriteFlag.Compressing) && this.#queueHead !== undefined) {
      const item = this.#shiftQueue()
      const ended = this.writeEnded()
      if (ended !== undefined) {
        item.reject(ended)
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
      this.#set(WriteFlag.Compressing, true)
      result.then((flushed) => {
        this.#set(WriteFlag.Compressing, false)
        this.#afterWrite(flushed).then(item.resolve, item.reject)
        this.#flushQueue()
      }, (error: unknown) => {
        this.#set(WriteFlag.Compressing, false)
        item.reject(this.#error ?? asError(error))
        this.#flushQueue()
      })
    }
  }

  /** Makes the first write error permanent and fails every write waiting for the socket. */
  fail (reason: Error): void {
    const error = this.#error ?? reason
    this.#error = error
    const drain = this.#drain
    this.#drain = undefined
    drain?.reject(error)
    let item = this.#queueHead
    this.#queueHead = this.#queueTail = undefined
    this.#queuedBytes = 0
    while (item !== undefined) {
      const next: QueuedWrite | undefined = item.next
      item.next = undefined
      item.reject(error)
      item = next
    }
    this.#writer?.abort(error)
  }

  /** The socket closed: the write deadline is no longer needed. */
  socketClosed (): void {
    clearTimeout(this.#timer?.timer)
  }

  // ---- For MessageWriter ---------------------------------------------------------------------------

  sendFragment (header: Buffer, payload: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#send(header)
      const flushed = this.#send(payload, (error) => {
        if (error == null) {
          resolve()
          return
        }
        // A failed write reports the connection's reason (a write deadline, say), not the stream's.
        this.#error ??= new WriteClosedError(`socket error: ${error.message}`)
        reject(this.#error)
      })
      const deadline = this.#timer?.deadline ?? 0
      if (!flushed && deadline !== 0) this.#armTimer(deadline)
    })
  }

  startCompression (size: number): MessageDeflation | undefined {
    const deflate = this.deflate
    return deflate !== undefined && this.#is(WriteFlag.CompressWrites) && deflate.shouldCompress(size) ? deflate.startCompress() : undefined
  }

  finished (writer: MessageWriter): void {
    if (this.#writer === writer) {
      this.#writer = undefined
      this.#flushQueue()
    }
  }
}

/** Checks a control frame's payload; the message of a UsageError, or the payload as a Buffer. */
export function controlPayload (data: Payload): Buffer | string {
  const converted = toPayload(data)
  if (converted === undefined) return BAD_PAYLOAD
  const payload = typeof converted === 'string' ? Buffer.from(converted) : converted
  if (payload.length > MAX_CONTROL_PAYLOAD) return `control payload of ${payload.length} bytes, at most 125 allowed`
  return payload
}
