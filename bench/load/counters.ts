/** Counts complete messages in a byte stream without keeping or copying their payloads. */
export interface MessageCounter {
  /** Consumes bytes [start, end) of `chunk` and returns how many messages they completed. */
  push: (chunk: Buffer, start: number, end: number) => number
  /** Whether a close frame was seen (WebSocket only). */
  closed: boolean
  /** Status code of the close frame: 1005 when it had none, undefined before it is complete. */
  closeCode: number | undefined
  /** Pong frames seen. */
  pongs: number
}

/**
 * Counts server frames: reads just the 2-10 header bytes of each frame (collecting them across
 * chunk boundaries) and skips the payload. A data frame with FIN ends a message; control frames
 * are not messages, and a close frame is noted (with its status code), and pongs are counted.
 */
export class FrameCounter implements MessageCounter {
  closed = false
  closeCode: number | undefined
  pongs = 0
  readonly #header = Buffer.alloc(14)
  #have = 0
  #need = 2
  #remaining = 0
  #final = false
  #control = false
  /** Status bytes of a close frame still to collect. */
  #closeStatus: number[] | undefined

  push (chunk: Buffer, start: number, end: number): number {
    let messages = 0
    let i = start
    while (i < end) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, end - i)
        if (this.#closeStatus !== undefined) this.#collectStatus(chunk, i, i + take)
        i += take
        this.#remaining -= take
        if (this.#remaining === 0) messages += this.#frameDone()
        continue
      }
      // Header bytes, one at a time only when a header straddles chunks or is extended.
      this.#header[this.#have++] = chunk[i++]!
      if (this.#have === 2) {
        const len7 = this.#header[1]! & 0x7f
        this.#need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((this.#header[1]! & 0x80) !== 0 ? 4 : 0)
      }
      if (this.#have < this.#need) continue
      messages += this.#headerDone()
    }
    return messages
  }

  #headerDone (): number {
    const h = this.#header
    const len7 = h[1]! & 0x7f
    const length = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? Number(h.readBigUInt64BE(2)) : len7
    const opcode = h[0]! & 0x0f
    this.#final = (h[0]! & 0x80) !== 0
    this.#control = opcode >= 8
    if (opcode === 8) {
      this.closed = true
      if (length < 2) this.closeCode = 1005
      else this.#closeStatus = []
    }
    if (opcode === 10) this.pongs++
    this.#have = 0
    this.#need = 2
    this.#remaining = length
    return length === 0 ? this.#frameDone() : 0
  }

  #collectStatus (chunk: Buffer, start: number, end: number): void {
    const status = this.#closeStatus!
    for (let i = start; i < end && status.length < 2; i++) status.push(chunk[i]!)
    if (status.length < 2) return
    this.closeCode = status[0]! * 256 + status[1]!
    this.#closeStatus = undefined
  }

  #frameDone (): number {
    return this.#final && !this.#control ? 1 : 0
  }
}

/** Counts fixed-size messages echoed over bare TCP: every `size` bytes is one message. */
export class ByteCounter implements MessageCounter {
  closed = false
  closeCode = undefined
  pongs = 0
  readonly #size: number
  #partial = 0

  constructor (size: number) {
    this.#size = size
  }

  push (_chunk: Buffer, start: number, end: number): number {
    const total = this.#partial + end - start
    const messages = Math.floor(total / this.#size)
    this.#partial = total - messages * this.#size
    return messages
  }
}
