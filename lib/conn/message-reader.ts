import type { DataMessageType } from '../protocol/constants.js'

/** Pieces at least this big are kept as views; smaller ones are copied once a message has many pieces. */
const KEEP_AS_VIEW = 1024
/** A message keeps up to this many views before small pieces start to be copied together. */
const FREE_VIEWS = 8
const COALESCE_BLOCK = 4096

/**
 * One received data message while it is buffered: its pieces, whether it is complete, and the
 * wake-up of a streaming reader. Tiny fragments are copied into shared blocks, so a flood of
 * 1-byte frames costs bytes, not one object per frame.
 */
export class InboundMessage {
  readonly type: DataMessageType
  readonly compressed: boolean
  /** Bytes received and not yet taken by a reader. */
  bytes = 0
  done = false
  /** Set when the connection failed before this message ended. */
  error: Error | undefined
  /** Whether a streaming reader owns this message. */
  streamed = false
  /** Whether its reader gave up on it, so further data is dropped. */
  discarded = false
  /** Called when data, the end or an error arrives for a waiting streaming reader. */
  wake: (() => void) | undefined
  /** The message received after this one while both wait in the connection's inbox. */
  next: InboundMessage | undefined

  private pieces: Buffer[] = []
  private block: Buffer | undefined
  private blockStart = 0
  private blockUsed = 0

  constructor (type: DataMessageType, compressed: boolean) {
    this.type = type
    this.compressed = compressed
  }

  push (piece: Buffer): void {
    this.bytes += piece.length
    if (piece.length >= KEEP_AS_VIEW || this.pieces.length < FREE_VIEWS) {
      this.sealBlock()
      this.pieces.push(piece)
      return
    }
    if (this.block === undefined || this.blockUsed + piece.length > this.block.length) {
      this.sealBlock()
      this.block = Buffer.allocUnsafe(COALESCE_BLOCK)
      this.blockStart = 0
      this.blockUsed = 0
    }
    piece.copy(this.block, this.blockUsed)
    this.blockUsed += piece.length
  }

  /** The whole message as one buffer (the only piece itself when there is one). */
  takeAll (): Buffer {
    this.sealBlock()
    const pieces = this.pieces
    this.pieces = []
    const total = this.bytes
    this.bytes = 0
    if (pieces.length === 1) return pieces[0]!
    if (pieces.length === 0) return Buffer.alloc(0)
    return Buffer.concat(pieces, total)
  }

  /** Removes and returns the oldest buffered piece, if any. */
  takePiece (): Buffer | undefined {
    if (this.pieces.length === 0) this.sealBlock()
    const piece = this.pieces.shift()
    if (piece !== undefined) this.bytes -= piece.length
    return piece
  }

  private sealBlock (): void {
    if (this.block !== undefined && this.blockUsed > this.blockStart) {
      this.pieces.push(this.block.subarray(this.blockStart, this.blockUsed))
      this.blockStart = this.blockUsed
    }
  }
}

/** What the streaming reader needs from its connection. */
export interface ReaderOwner {
  /** Called after a reader took `bytes` bytes, so the connection can resume reading. */
  consumed (bytes: number): void
  /** Called when the reader is finished with its message (read to the end or discarded). */
  released (reader: MessageReader): void
}

/**
 * Streams the data of one message as it arrives: `read()` resolves with the next piece, or null
 * at the end of the message; it is also an async iterable of pieces. It rejects with the
 * connection's error when the connection fails before the message ends.
 */
export class MessageReader implements AsyncIterable<Buffer> {
  /** The message type, TextMessage or BinaryMessage. */
  readonly type: DataMessageType
  private readonly message: InboundMessage
  private readonly owner: ReaderOwner
  private finished = false

  constructor (message: InboundMessage, owner: ReaderOwner) {
    this.type = message.type
    this.message = message
    this.owner = owner
    message.streamed = true
  }

  /** Resolves with the next piece of the message, or null once the whole message was read. */
  async read (): Promise<Buffer | null> {
    const message = this.message
    for (;;) {
      if (this.finished) return null
      const piece = message.takePiece()
      if (piece !== undefined) {
        this.owner.consumed(piece.length)
        return piece
      }
      if (message.error !== undefined) throw message.error
      if (message.done) {
        this.finish()
        return null
      }
      // Reads that wait at the same time are all woken, in call order, and take pieces in turn.
      await new Promise<void>((resolve) => {
        const earlier = message.wake
        message.wake = () => {
          message.wake = undefined
          earlier?.()
          resolve()
        }
      })
    }
  }

  /** Reads the rest of the message into one buffer. */
  async readAll (): Promise<Buffer> {
    const pieces: Buffer[] = []
    for (let piece = await this.read(); piece !== null; piece = await this.read()) pieces.push(piece)
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces)
  }

  async * [Symbol.asyncIterator] (): AsyncIterator<Buffer> {
    for (let piece = await this.read(); piece !== null; piece = await this.read()) yield piece
  }

  /** Drops what is left of the message; later reads return null. */
  discard (): void {
    if (this.finished) return
    const dropped = this.message.bytes
    this.message.discarded = true
    this.message.takeAll()
    this.owner.consumed(dropped)
    this.finish()
  }

  /** Whether the reader has reached the end of its message or was discarded. */
  get isFinished (): boolean {
    return this.finished
  }

  private finish (): void {
    this.finished = true
    this.owner.released(this)
    const wake = this.message.wake
    if (wake !== undefined) wake()
  }
}
