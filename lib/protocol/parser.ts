import { isUtf8 } from 'node:buffer'
import { parseClosePayload } from './close.js'
import { CloseMessage, MAX_CONTROL_PAYLOAD, OPCODE_CONTINUATION, PingMessage, PongMessage, TextMessage, type DataMessageType } from './constants.js'
import { PROTOCOL_ERROR_CODES, ProtocolError, ReadLimitError, stackless, type ProtocolErrorCode } from './errors.js'
import { applyMask } from './mask.js'
import { Utf8Validator } from './utf8.js'

/** Receives what the parser finds, in wire order. Payload views stay valid after the call returns. */
export interface FrameSink {
  /** The first frame of a data message arrived; `compressed` is its RSV1 bit. */
  onMessageStart (type: DataMessageType, compressed: boolean): void
  /** Unmasked payload bytes of the current data message (never empty). */
  onMessageData (piece: Buffer): void
  /** The final frame of the current data message ended. */
  onMessageEnd (): void
  /**
   * An uncompressed message that is one frame whose payload arrived in one piece; called instead
   * of start, data and end, so the commonest message costs one call.
   */
  onWholeMessage (type: DataMessageType, payload: Buffer): void
  onPing (payload: Buffer): void
  onPong (payload: Buffer): void
  /** A valid close frame; `code` is 1005 when it carried no status. */
  onClose (code: number, reason: string): void
  /** The peer broke a rule; the parser accepts no more input after this. */
  onProtocolError (error: ProtocolError): void
}

/** Rules the parser enforces; `options` may be replaced between `push` calls (one object may serve many parsers). */
export interface FrameParserOptions {
  /** Servers require masked frames, clients reject them. */
  isServer: boolean
  /** Largest message payload in bytes, checked on frame headers before any payload is kept; 0 = none. */
  readLimit: number
  /** Most frames one data message may be split into. */
  maxFragments: number
  /** Whether RSV1 (permessage-deflate) was negotiated. */
  allowRsv1: boolean
  /** Whether uncompressed text messages are checked for UTF-8 as they arrive. */
  validateUtf8: boolean
}

const enum State { Header, Payload }

const EMPTY = Buffer.alloc(0)
/** 2^53 / 2^32: a 64-bit length whose high word reaches this is not a safe integer. */
const MAX_SAFE_HIGH_WORD = 0x200000

/**
 * Incremental RFC 6455 frame parser. It accepts input split at any byte, never trusts a length
 * (limits are checked on the header, before payload is kept) and holds at most one partial header
 * (14 bytes) and one partial control payload (125 bytes) of its own: data payload is unmasked in
 * place and handed on as views of the pushed chunks.
 */
export class FrameParser {
  options: FrameParserOptions
  private readonly sink: FrameSink
  private state = State.Header
  private failed = false

  /**
   * One small block per parser (a slice of Node's shared pool, so no ArrayBuffer of its own) for the
   * mask key (its first four bytes, handed to applyMask as the key), a header split across chunks
   * and a control payload; only written bytes are ever read. Made at the first masked frame or
   * split header: an idle connection never needs it.
   */
  private scratchBlock: Buffer | undefined
  private headerScratch: Buffer | undefined
  private headerFilled = 0

  private fin = false
  private opcode = 0
  private masked = false
  private maskPhase = 0
  private frameLength = 0
  private remaining = 0

  private controlScratch: Buffer | undefined
  private controlFilled = 0

  private messageType: DataMessageType | 0 = 0
  private messageCompressed = false
  private messageLength = 0
  private messageFragments = 0
  private checkText = false
  private wholeMessageFrame = false
  /** A one-frame uncompressed message whose start is not yet reported: it may still arrive whole. */
  private startPending = false
  /** The current frame was reported through onWholeMessage; its end is not reported again. */
  private deliveredWhole = false
  /** Validates text that arrives in pieces; made for the first such message (whole ones use isUtf8). */
  private utf8: Utf8Validator | undefined
  /** Set by a sink that must finish work (an inflation) before any later frame is acted on. */
  private paused = false
  /** Input that arrived while paused, in order; parsed by `resume`. */
  private held: Buffer[] | undefined
  private heldLength = 0

  constructor (sink: FrameSink, options: FrameParserOptions) {
    this.sink = sink
    this.options = options
  }

  private get scratch (): Buffer {
    this.scratchBlock ??= Buffer.allocUnsafe(4 + 14 + MAX_CONTROL_PAYLOAD)
    return this.scratchBlock
  }

  /** Whether a protocol error has stopped the parser. */
  get isFailed (): boolean {
    return this.failed
  }

  /** Whether a data message has started and not yet ended. */
  get inMessage (): boolean {
    return this.messageType !== 0
  }

  /** Whether `pause` holds the input back. */
  get isPaused (): boolean {
    return this.paused
  }

  /** Bytes of input held back while paused. */
  get heldBytes (): number {
    return this.heldLength
  }

  /** Parses `chunk`, which the parser may modify (unmasking) and hand on in views. */
  push (chunk: Buffer): void {
    if (this.failed) return
    if (this.paused) {
      this.hold(chunk)
      return
    }
    let offset = 0
    const length = chunk.length
    while (offset < length && !this.failed) {
      if (this.paused) {
        this.hold(chunk.subarray(offset))
        return
      }
      if (this.state === State.Header) {
        offset = this.readHeader(chunk, offset)
      } else {
        offset = this.readPayload(chunk, offset)
      }
    }
  }

  /**
   * Stops acting on input at the end of the current frame (whose remaining data in this chunk and
   * message end are still reported): the sink calls it while a callback's work (inflating a
   * compressed frame) is unfinished, so no later frame (a ping, say) is acted on before that work
   * has succeeded or failed. Input goes on being accepted and is held.
   */
  pause (): void {
    this.paused = true
  }

  /** Parses the held input, until it is consumed or the sink pauses again. */
  resume (): void {
    if (!this.paused) return
    this.paused = false
    const held = this.held
    if (held === undefined) return
    this.held = undefined
    this.heldLength = 0
    for (let i = 0; i < held.length; i++) {
      this.push(held[i]!)
      if (this.paused && i + 1 < held.length) {
        // push held its own remainder first: the later chunks go behind it.
        for (let j = i + 1; j < held.length; j++) this.hold(held[j]!)
        return
      }
    }
  }

  /** Stops the parser for good; held and later input is ignored. */
  stop (): void {
    this.failed = true
    this.held = undefined
    this.heldLength = 0
  }

  private hold (chunk: Buffer): void {
    (this.held ??= []).push(chunk)
    this.heldLength += chunk.length
  }

  private readHeader (chunk: Buffer, offset: number): number {
    const available = chunk.length - offset
    if (this.headerFilled === 0 && available >= 2) {
      const needed = this.headerSizeFrom(chunk[offset]!, chunk[offset + 1]!)
      if (needed < 0) return chunk.length
      if (available >= needed) {
        this.startFrame(chunk, offset)
        return offset + needed
      }
    }
    // The header is split across chunks: collect it in the scratch buffer.
    const scratch = this.headerScratch ??= this.scratch.subarray(4, 18)
    let at = offset
    if (this.headerFilled < 2) {
      while (this.headerFilled < 2 && at < chunk.length) scratch[this.headerFilled++] = chunk[at++]!
      if (this.headerFilled < 2) return at
    }
    const needed = this.headerSizeFrom(scratch[0]!, scratch[1]!)
    if (needed < 0) return chunk.length
    const take = Math.min(needed - this.headerFilled, chunk.length - at)
    chunk.copy(scratch, this.headerFilled, at, at + take)
    this.headerFilled += take
    at += take
    if (this.headerFilled === needed) {
      this.headerFilled = 0
      this.startFrame(scratch, 0)
    }
    return at
  }

  /** Checks the first two header bytes and returns the whole header's size, or -1 after failing. */
  private headerSizeFrom (b0: number, b1: number): number {
    const fin = (b0 & 0x80) !== 0
    const rsv1 = (b0 & 0x40) !== 0
    const opcode = b0 & 0x0f
    const masked = (b1 & 0x80) !== 0
    const len7 = b1 & 0x7f

    if ((b0 & 0x30) !== 0) return this.fail('ERR_WS_RESERVED_BITS', 'reserved bits RSV2/RSV3 set')
    if (opcode >= CloseMessage) {
      if (opcode > PongMessage) return this.fail('ERR_WS_RESERVED_OPCODE', `reserved opcode ${opcode}`)
      if (!fin) return this.fail('ERR_WS_FRAGMENTED_CONTROL', 'fragmented control frame')
      if (len7 > MAX_CONTROL_PAYLOAD) return this.fail('ERR_WS_CONTROL_TOO_LONG', 'control frame payload over 125 bytes')
      if (rsv1) return this.fail('ERR_WS_UNEXPECTED_RSV1', 'RSV1 set on a control frame')
    } else if (opcode === OPCODE_CONTINUATION) {
      if (this.messageType === 0) return this.fail('ERR_WS_UNEXPECTED_CONTINUATION', 'continuation frame without a message to continue')
      if (rsv1) return this.fail('ERR_WS_UNEXPECTED_RSV1', 'RSV1 set on a continuation frame')
    } else if (opcode <= 2) {
      if (this.messageType !== 0) return this.fail('ERR_WS_EXPECTED_CONTINUATION', 'new data frame inside a fragmented message')
      if (rsv1 && !this.options.allowRsv1) return this.fail('ERR_WS_UNEXPECTED_RSV1', 'RSV1 set without a negotiated extension')
    } else {
      return this.fail('ERR_WS_RESERVED_OPCODE', `reserved opcode ${opcode}`)
    }
    if (masked !== this.options.isServer) {
      return masked
        ? this.fail('ERR_WS_UNEXPECTED_MASK', 'masked frame from the server')
        : this.fail('ERR_WS_EXPECTED_MASK', 'unmasked frame from the client')
    }
    const lengthBytes = len7 < 126 ? 0 : len7 === 126 ? 2 : 8
    return 2 + lengthBytes + (masked ? 4 : 0)
  }

  /** Reads a complete, already checked header at `at` and prepares for the payload. */
  private startFrame (header: Buffer, at: number): void {
    const b0 = header[at]!
    const b1 = header[at + 1]!
    const len7 = b1 & 0x7f
    let pos = at + 2
    let length: number
    if (len7 < 126) {
      length = len7
    } else if (len7 === 126) {
      length = header.readUInt16BE(pos)
      pos += 2
    } else {
      const high = header.readUInt32BE(pos)
      if (high >= 0x80000000) {
        this.fail('ERR_WS_INVALID_LENGTH', '64-bit payload length with the most significant bit set')
        return
      }
      if (high >= MAX_SAFE_HIGH_WORD) {
        this.failReadLimit('ERR_WS_READ_LIMIT', 'frame length beyond 2^53 bytes')
        return
      }
      length = high * 0x100000000 + header.readUInt32BE(pos + 4)
      pos += 8
    }
    this.fin = (b0 & 0x80) !== 0
    this.opcode = b0 & 0x0f
    this.masked = (b1 & 0x80) !== 0
    if (this.masked) {
      const key = this.scratch
      key[0] = header[pos]!
      key[1] = header[pos + 1]!
      key[2] = header[pos + 2]!
      key[3] = header[pos + 3]!
    }
    this.maskPhase = 0
    this.frameLength = length
    this.remaining = length

    if (this.opcode >= CloseMessage) {
      this.controlFilled = 0
    } else {
      const limit = this.options.readLimit
      if (limit > 0 && this.messageLength + length > limit) {
        this.failReadLimit('ERR_WS_READ_LIMIT', `message of more than ${limit} bytes`)
        return
      }
      if (++this.messageFragments > this.options.maxFragments) {
        this.failReadLimit('ERR_WS_TOO_MANY_FRAGMENTS', `message split into more than ${this.options.maxFragments} frames`)
        return
      }
      this.messageLength += length
      if (this.opcode !== OPCODE_CONTINUATION) {
        this.messageType = this.opcode as DataMessageType
        this.messageCompressed = (b0 & 0x40) !== 0
        this.checkText = this.messageType === TextMessage && !this.messageCompressed && this.options.validateUtf8
        this.wholeMessageFrame = this.fin
        if (this.checkText) this.utf8?.reset()
        if (this.fin && !this.messageCompressed) {
          this.startPending = true
        } else {
          this.sink.onMessageStart(this.messageType, this.messageCompressed)
          if (this.failed) return
        }
      } else {
        this.wholeMessageFrame = false
      }
    }
    if (length === 0) {
      this.endFrame()
    } else {
      this.state = State.Payload
    }
  }

  private readPayload (chunk: Buffer, offset: number): number {
    const take = Math.min(this.remaining, chunk.length - offset)
    const end = offset + take
    if (this.opcode >= CloseMessage) {
      const control = this.controlScratch ??= this.scratch.subarray(18)
      chunk.copy(control, this.controlFilled, offset, end)
      const piece = control.subarray(this.controlFilled, this.controlFilled + take)
      if (this.masked) this.maskPhase = applyMask(piece, this.scratch, this.maskPhase)
      this.controlFilled += take
    } else {
      const piece = offset === 0 && end === chunk.length ? chunk : chunk.subarray(offset, end)
      if (this.masked) this.maskPhase = applyMask(piece, this.scratch, this.maskPhase)
      const whole = this.wholeMessageFrame && take === this.frameLength
      if (this.checkText) {
        if (!(whole ? isUtf8(piece) : (this.utf8 ??= new Utf8Validator()).push(piece))) {
          this.fail('ERR_WS_INVALID_UTF8', 'invalid UTF-8 in text message')
          return chunk.length
        }
        if (whole) this.checkText = false
      }
      if (this.startPending) {
        this.startPending = false
        if (whole) {
          this.deliveredWhole = true
          this.sink.onWholeMessage(this.messageType as DataMessageType, piece)
        } else {
          this.sink.onMessageStart(this.messageType as DataMessageType, false)
          this.sink.onMessageData(piece)
        }
      } else {
        this.sink.onMessageData(piece)
      }
    }
    this.remaining -= take
    if (this.remaining === 0) this.endFrame()
    return end
  }

  private endFrame (): void {
    this.state = State.Header
    const opcode = this.opcode
    if (opcode < CloseMessage) {
      if (!this.fin) return
      if (this.checkText && this.utf8 !== undefined && !this.utf8.end()) {
        this.fail('ERR_WS_INVALID_UTF8', 'text message ends inside a UTF-8 character')
        return
      }
      const type = this.messageType as DataMessageType
      this.messageType = 0
      this.messageLength = 0
      this.messageFragments = 0
      if (this.deliveredWhole) {
        this.deliveredWhole = false
      } else if (this.startPending) {
        // An empty one-frame message.
        this.startPending = false
        this.sink.onWholeMessage(type, EMPTY)
      } else {
        this.sink.onMessageEnd()
      }
      return
    }
    const payload = this.controlFilled === 0 ? EMPTY : Buffer.from(this.controlScratch!.subarray(0, this.controlFilled))
    if (opcode === PingMessage) {
      this.sink.onPing(payload)
    } else if (opcode === PongMessage) {
      this.sink.onPong(payload)
    } else {
      const close = parseClosePayload(payload)
      if (!close.ok) {
        this.fail(close.code, close.message)
        return
      }
      // Nothing may follow a close frame.
      this.failed = true
      this.sink.onClose(close.code, close.reason)
    }
  }

  /** Fails with the close code `PROTOCOL_ERROR_CODES` gives `code`; the limits go through failReadLimit. */
  private fail (code: Exclude<ProtocolErrorCode, ReadLimitError['code']>, message: string): -1 {
    this.failed = true
    this.sink.onProtocolError(stackless(() => new ProtocolError(message, PROTOCOL_ERROR_CODES[code].closeCode, code)))
    return -1
  }

  private failReadLimit (code: ReadLimitError['code'], message: string): void {
    this.failed = true
    this.sink.onProtocolError(stackless(() => new ReadLimitError(message, code)))
  }
}
