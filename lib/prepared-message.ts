import { BinaryMessage, CloseMessage, MAX_CONTROL_PAYLOAD, PingMessage, PongMessage, TextMessage, type MessageType } from './protocol/constants.js'
import { UsageError } from './protocol/errors.js'
import { BAD_PAYLOAD, encodeFrame, toPayload, type Payload } from './protocol/framing.js'
import { compressStandalone } from './deflate/codec.js'

/**
 * A message framed once and written to many connections (a broadcast): every server connection
 * gets the very same bytes with no copy; client connections get a freshly masked frame per send,
 * never a reused mask.
 */
export class PreparedMessage {
  /** The message type. */
  readonly type: MessageType
  /** A private copy of the payload. */
  readonly data: Buffer
  #serverFrame: Buffer | undefined
  /** Compressed payloads by `level:windowBits`, each made once for every connection that shares them. */
  readonly #compressed = new Map<string, Promise<Buffer>>()
  readonly #compressedServerFrames = new Map<string, Promise<Buffer>>()

  constructor (type: MessageType, data: Payload) {
    if (type !== TextMessage && type !== BinaryMessage && type !== CloseMessage && type !== PingMessage && type !== PongMessage) {
      throw new UsageError(`bad message type ${String(type)}`)
    }
    const payload = toPayload(data)
    if (payload === undefined) throw new UsageError(BAD_PAYLOAD)
    this.data = Buffer.from(payload)
    if (type >= CloseMessage && this.data.length > MAX_CONTROL_PAYLOAD) {
      throw new UsageError(`control payload of ${this.data.length} bytes, at most 125 allowed`)
    }
    this.type = type
  }

  /**
   * The frame with the payload compressed (RSV1 set) at `level` with `windowBits`: compressed once
   * per pair and shared by every connection, server frames included; client frames get a fresh mask.
   */
  compressedFrameFor (isServer: boolean, level: number, windowBits: number): Promise<Buffer> {
    const key = `${level}:${windowBits}`
    let payload = this.#compressed.get(key)
    if (payload === undefined) {
      payload = compressStandalone(this.data, { level, windowBits })
      this.#compressed.set(key, payload)
    }
    if (!isServer) return payload.then((bytes) => encodeFrame(this.type, true, true, bytes, true))
    let frame = this.#compressedServerFrames.get(key)
    if (frame === undefined) {
      frame = payload.then((bytes) => encodeFrame(this.type, true, true, bytes, false))
      this.#compressedServerFrames.set(key, frame)
    }
    return frame
  }

  /** The frame to write on a connection of the given role (server frames are cached). */
  frameFor (isServer: boolean): Buffer {
    if (!isServer) return encodeFrame(this.type, true, false, this.data, true)
    this.#serverFrame ??= encodeFrame(this.type, true, false, this.data, false)
    return this.#serverFrame
  }
}
