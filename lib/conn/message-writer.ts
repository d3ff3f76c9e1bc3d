import type { MessageDeflation } from '../deflate/compressor.js'
import type { ResolvedConnOptions } from '../options.js'
import { OPCODE_CONTINUATION, type DataMessageType } from '../protocol/constants.js'
import { UsageError, WriteClosedError } from '../protocol/errors.js'
import { frameHeaderSize, writeFrameHeader } from '../protocol/frame.js'
import { BAD_PAYLOAD, encodeHeader, toPayload, type Payload } from '../protocol/framing.js'
import { applyMask, nextMaskKey } from '../protocol/mask.js'
import { rejected } from '../settle.js'

/** What a MessageWriter needs from its connection's write side. */
export interface WriterOwner {
  readonly isServer: boolean
  readonly options: Pick<ResolvedConnOptions, 'writeBufferSize' | 'writeBufferPool'>
  /** The error that forbids writing now, if any. */
  writeEnded (): Error | undefined
  /** Sends a frame through the connection's write path; resolves once the socket wrote it. */
  sendFragment (header: Buffer, payload: Buffer): Promise<void>
  /** Starts compressing a message of about `size` bytes, or undefined to send it uncompressed. */
  startCompression (size: number): MessageDeflation | undefined
  /** Called once, when the writer has sent its final frame or failed. */
  finished (writer: MessageWriter): void
}

const EMPTY = Buffer.alloc(0)

/**
 * Writes one message in fragments of at most the connection's `writeBufferSize`: `write` fills a
 * buffer taken from the write-buffer pool and sends a frame each time it is full and more data
 * follows; `close` sends the final frame and gives the buffer back. Each call resolves once the
 * socket has written its frames, which is the writer's backpressure.
 */
export class MessageWriter {
  /** The message type, TextMessage or BinaryMessage. */
  readonly type: DataMessageType
  readonly #owner: WriterOwner
  #buffer: Buffer | undefined
  #filled = 0
  #first = true
  #closed = false
  #failure: Error | undefined
  /** The compression of this message: undefined until decided, null when it goes uncompressed. */
  #deflation: MessageDeflation | null | undefined
  #chain: Promise<void> = Promise.resolve()

  constructor (type: DataMessageType, owner: WriterOwner) {
    this.type = type
    this.#owner = owner
  }

  /** Appends `data` to the message. Rejects once `close` was called or the connection failed. */
  write (data: Payload): Promise<void> {
    if (this.#closed) return rejected(this.#failure ?? new WriteClosedError('message writer already closed'))
    const payload = toPayload(data)
    if (payload === undefined) return rejected(new UsageError(BAD_PAYLOAD))
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
    return this.#then(() => this.#append(bytes))
  }

  /**
   * Sends the final frame and releases the connection to the next writer; rejects when the
   * connection failed before the message could be finished. Calling it twice is harmless.
   */
  close (): Promise<void> {
    // After abort() the message can never be finished; saying so beats resolving as if it were.
    if (this.#closed) return this.#failure === undefined ? this.#chain : rejected(this.#failure)
    this.#closed = true
    const run = this.#then(() => this.#flush(true)).finally(() => { this.#release() })
    this.#chain = run.catch(() => {})
    return run
  }

  /** Whether `close` was called. */
  get isClosed (): boolean {
    return this.#closed
  }

  /** Fails the writer because the connection went away. */
  abort (error: Error): void {
    this.#failure ??= error
    if (this.#deflation != null) this.#deflation.abort()
    if (!this.#closed) {
      this.#closed = true
      this.#release()
    }
  }

  #then (step: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(step)
    this.#chain = run.catch(() => {})
    return run
  }

  async #append (bytes: Buffer): Promise<void> {
    const size = this.#owner.options.writeBufferSize
    let offset = 0
    while (offset < bytes.length) {
      if (this.#filled === size) await this.#flush(false)
      const buffer = this.#takeBuffer(size)
      const count = Math.min(size - this.#filled, bytes.length - offset)
      bytes.copy(buffer, this.#filled, offset, offset + count)
      this.#filled += count
      offset += count
    }
  }

  #takeBuffer (size: number): Buffer {
    if (this.#buffer === undefined) {
      const pooled = this.#owner.options.writeBufferPool?.get()
      this.#buffer = pooled !== undefined && pooled.length >= size ? pooled : Buffer.allocUnsafe(size)
    }
    return this.#buffer
  }

  async #flush (fin: boolean): Promise<void> {
    const blocked = this.#failure ?? this.#owner.writeEnded()
    if (blocked !== undefined) throw blocked
    let payload = this.#buffer === undefined ? EMPTY : this.#buffer.subarray(0, this.#filled)
    // Whether to compress is decided once, on the first fragment: a full buffer, or the whole message.
    if (this.#deflation === undefined) this.#deflation = this.#owner.startCompression(fin ? payload.length : Infinity) ?? null
    let rsv1 = false
    if (this.#deflation !== null) {
      payload = fin ? await this.#deflation.end(payload) : await this.#deflation.write(payload)
      this.#filled = 0
      // zlib may hold everything back until more input comes; an empty fragment says nothing.
      if (!fin && payload.length === 0) return
      rsv1 = this.#first
      const failed = this.#failure ?? this.#owner.writeEnded()
      if (failed !== undefined) throw failed
    }
    const opcode = this.#first ? this.type : OPCODE_CONTINUATION
    this.#first = false
    let header: Buffer
    if (this.#owner.isServer) {
      header = encodeHeader(opcode, fin, rsv1, payload.length)
    } else {
      const key = nextMaskKey()
      header = Buffer.allocUnsafe(frameHeaderSize(payload.length, true))
      writeFrameHeader(header, 0, opcode, fin, rsv1, payload.length, key)
      applyMask(payload, key, 0)
    }
    this.#filled = 0
    return await this.#owner.sendFragment(header, payload)
  }

  #release (): void {
    const buffer = this.#buffer
    this.#buffer = undefined
    if (buffer !== undefined) this.#owner.options.writeBufferPool?.put(buffer)
    this.#owner.finished(this)
  }
}
