import type { MessageCounter } from './counters.js'

/** How many payload bytes of each message a HeadReader keeps: enough for a Socket.IO event name and a sequence number. */
export const HEAD_BYTES = 32

/** Called for every complete data message with the first bytes of its payload (valid only during the call). */
export type OnHead = (head: Buffer, length: number) => void

/**
 * Reads server frames like FrameCounter, but also keeps the first HEAD_BYTES of each data
 * message's payload (copied into one reused buffer, the rest skipped) and hands them to `onHead`
 * when the message ends, so a job can read sequence numbers and protocol packets without
 * allocating per message.
 */
export class HeadReader implements MessageCounter {
  closed = false
  /** 1005 once a close frame began: the fan-out job only needs to know the server closed, not why. */
  closeCode: number | undefined
  pongs = 0
  readonly #onHead: OnHead
  readonly #header = Buffer.alloc(14)
  readonly #head = Buffer.alloc(HEAD_BYTES)
  #headLength = 0
  #have = 0
  #need = 2
  #remaining = 0
  #final = false
  #data = false

  constructor (onHead: OnHead) {
    this.#onHead = onHead
  }

  push (chunk: Buffer, start: number, end: number): number {
    let messages = 0
    let i = start
    while (i < end) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, end - i)
        if (this.#data && this.#headLength < HEAD_BYTES) {
          const copy = Math.min(take, HEAD_BYTES - this.#headLength)
          chunk.copy(this.#head, this.#headLength, i, i + copy)
          this.#headLength += copy
        }
        i += take
        this.#remaining -= take
        if (this.#remaining === 0) messages += this.#frameDone()
        continue
      }
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
    // A continuation frame adds to the message whose head is being kept; a control frame has no head.
    this.#data = opcode < 8
    if (opcode === 1 || opcode === 2) this.#headLength = 0
    if (opcode === 8) {
      this.closed = true
      this.closeCode = 1005
    }
    if (opcode === 10) this.pongs++
    this.#have = 0
    this.#need = 2
    this.#remaining = length
    return length === 0 ? this.#frameDone() : 0
  }

  #frameDone (): number {
    if (!this.#final || !this.#data) return 0
    this.#onHead(this.#head, this.#headLength)
    return 1
  }
}
