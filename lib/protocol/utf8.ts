import { isUtf8 } from 'node:buffer'

/**
 * Incremental UTF-8 validator for messages that arrive in pieces. It accepts exactly what
 * `buffer.isUtf8` accepts over the whole message, and rejects as soon as the bytes seen so far
 * cannot start any valid text (so a fragmented message fails on its first bad fragment).
 */
export class Utf8Validator {
  /** Continuation bytes still expected for the current character. */
  private needed = 0
  private lower = 0x80
  private upper = 0xbf

  /** Forgets any partial character, ready for a new message. */
  reset (): void {
    this.needed = 0
    this.lower = 0x80
    this.upper = 0xbf
  }

  /** Feeds the next piece; false when the text can no longer be valid. */
  push (chunk: Uint8Array): boolean {
    const length = chunk.length
    let i = 0
    while (this.needed > 0 && i < length) {
      if (!this.step(chunk[i]!)) return false
      i++
    }
    if (i === length) return true
    const tail = incompleteTailStart(chunk, i)
    if (tail > i && !isUtf8(i === 0 && tail === length ? chunk : chunk.subarray(i, tail))) return false
    for (let j = tail; j < length; j++) {
      if (!this.step(chunk[j]!)) return false
    }
    return true
  }

  /** True when the text seen so far ends on a character boundary. */
  end (): boolean {
    return this.needed === 0
  }

  private step (byte: number): boolean {
    if (this.needed > 0) {
      if (byte < this.lower || byte > this.upper) return false
      this.needed--
      this.lower = 0x80
      this.upper = 0xbf
      return true
    }
    if (byte >= 0xc2 && byte <= 0xdf) {
      this.needed = 1
    } else if (byte >= 0xe0 && byte <= 0xef) {
      this.needed = 2
      if (byte === 0xe0) this.lower = 0xa0
      else if (byte === 0xed) this.upper = 0x9f
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      this.needed = 3
      if (byte === 0xf0) this.lower = 0x90
      else if (byte === 0xf4) this.upper = 0x8f
    } else {
      // Only lead bytes of cut-off characters reach here, but ASCII stays valid should one come.
      return byte < 0x80
    }
    return true
  }
}

/**
 * Where a character cut off by the end of `chunk` begins (or chunk.length when the last character
 * is complete); only the last 3 bytes can hold such a start.
 */
function incompleteTailStart (chunk: Uint8Array, from: number): number {
  const length = chunk.length
  const stop = Math.max(from, length - 3)
  for (let j = length - 1; j >= stop; j--) {
    const byte = chunk[j]!
    if ((byte & 0xc0) !== 0x80) {
      const size = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1
      return j + size > length ? j : length
    }
  }
  return length
}
