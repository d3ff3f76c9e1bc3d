import { Duplex } from 'node:stream'

/**
 * One end of an in-memory byte pipe: what is written to it is read from its peer. Bytes arrive
 * in a later turn of the event loop, as over a network, so a write is complete before the peer
 * can answer it; a write completes only once the peer's reader has room (backpressure, as on a
 * socket); ending the write side ends the peer's read side, and destroying one end ends the
 * other like a dropped connection, bytes still in flight being lost.
 */
export class PipeEnd extends Duplex {
  /** Reported as the peer address, so code that logs `socket.remoteAddress` sees a loopback client. */
  readonly remoteAddress = '127.0.0.1'
  /** Reported like a TCP socket's family. */
  readonly remoteFamily = 'IPv4'
  /** An in-memory pipe never uses TLS. */
  readonly encrypted = false

  #peer: PipeEnd | undefined
  // Set once nothing more may be pushed to this end's reader.
  #inputEnded = false
  // The callback of the peer's write that waits until this end's reader wants more (noop: none).
  #resumePeerWrite: () => void = noop

  constructor () {
    super({ allowHalfOpen: false })
  }

  /** Joins two ends; each must be joined exactly once. */
  static connect (a: PipeEnd, b: PipeEnd): void {
    a.#peer = b
    b.#peer = a
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const peer = this.#peer!
    setImmediate(() => { peer.#receive(chunk, callback) })
  }

  override _read (): void {
    const resume = this.#resumePeerWrite
    this.#resumePeerWrite = noop
    resume()
  }

  override _final (callback: (error?: Error | null) => void): void {
    this.#peer!.#endInput()
    callback()
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    this.#inputEnded = true
    // A writer waiting for this end's reader must not hang; its bytes are lost, as on a reset.
    const resume = this.#resumePeerWrite
    this.#resumePeerWrite = noop
    resume()
    this.#peer!.#endInput()
    callback(error)
  }

  /** Takes bytes the peer wrote; they are dropped once this end can read no more. */
  #receive (chunk: Buffer, done: () => void): void {
    if (this.#inputEnded) {
      done()
      return
    }
    if (this.push(chunk)) done()
    else this.#resumePeerWrite = done
  }

  #endInput (): void {
    if (this.#inputEnded) return
    this.#inputEnded = true
    this.push(null)
  }

  // Socket methods some HTTP and WebSocket code calls when they exist; a pipe has nothing to tune.
  /** Does nothing: a pipe has no Nagle algorithm. */
  setNoDelay (): this { return this }
  /** Does nothing: a pipe has no keep-alive probes. */
  setKeepAlive (): this { return this }
  /** Does nothing: a pipe has no idle timeout. */
  setTimeout (): this { return this }
}

function noop (): void {}

/** Creates two connected in-memory ends, a stand-in for both sides of a TCP connection. */
export function createDuplexPair (): [PipeEnd, PipeEnd] {
  const a = new PipeEnd()
  const b = new PipeEnd()
  PipeEnd.connect(a, b)
  return [a, b]
}
