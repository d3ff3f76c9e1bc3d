import { formatCloseMessage, truncateUtf8 } from '../protocol/close.js'
import { MAX_CONTROL_PAYLOAD } from '../protocol/constants.js'
import type { ProtocolError } from '../protocol/errors.js'
import { RESOLVED } from '../settle.js'
import type { ConnReader, ReadEvents } from './read.js'
import type { ConnWriter } from './write.js'

/** State bits of the closing handshake. */
const enum CloseFlag {
  CloseReceived = 1,
  /** close() or a failure started the closing handshake. */
  CloseStarted = 2,
  SocketClosed = 4
}

/**
 * The closing handshake of a connection (RFC 6455 §7): our close frame after every write accepted
 * before it, the peer's close frame answered on the next turn, TCP ended by the server (a client
 * waits for the server's end, §7.1.1), and the socket destroyed when that takes longer than
 * `closeTimeout`. It also fails the connection when the read side reports a broken rule.
 */
export class ConnClosing implements ReadEvents {
  readonly #writer: ConnWriter
  /** Set once, right after construction: the reader reports to this object. */
  reader!: ConnReader
  #flags = 0
  #timer: NodeJS.Timeout | undefined
  /** A protocol error whose close frame is about to be sent; it wins over an application's close(). */
  #pendingFailure: ProtocolError | undefined
  /** Made on first use: most connections never ask. */
  #closed: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined

  constructor (writer: ConnWriter) {
    this.#writer = writer
  }

  #is (flag: CloseFlag): boolean {
    return (this.#flags & flag) !== 0
  }

  /** See Conn.closed. */
  get closed (): Promise<void> {
    this.#closed ??= this.#is(CloseFlag.SocketClosed) ? RESOLVED : new Promise((resolve) => { this.#resolveClosed = resolve })
    return this.#closed
  }

  /** See Conn.close. */
  close (code: number, reason: string): Promise<void> {
    if (this.#pendingFailure !== undefined) this.#failConnection(this.#pendingFailure)
    if (this.#is(CloseFlag.CloseStarted | CloseFlag.SocketClosed)) return this.closed
    const payload = formatCloseMessage(code, truncateUtf8(reason, MAX_CONTROL_PAYLOAD - 2))
    this.#flags |= CloseFlag.CloseStarted
    this.#armTimer()
    const writer = this.#writer
    if (writer.closeSent || writer.error !== undefined) {
      this.#endSocket()
      return this.closed
    }
    writer.sendCloseAfterQueued(payload, () => { this.closeSent() })
    return this.closed
  }

  /** Our close frame was written (by close() or writeControl). */
  closeSent (): void {
    this.#armTimer()
    if (this.#is(CloseFlag.CloseReceived)) this.#handshakeDone()
  }

  closeFrame (code: number, text: string): void {
    this.#flags |= CloseFlag.CloseReceived
    // Messages that arrived before the close are already resolved to readers; answering on the
    // next turn lets the application's replies to them (an echo, say) go out before our close.
    setImmediate(() => { this.#runCloseHandler(code, text) })
  }

  #runCloseHandler (code: number, text: string): void {
    const handler = this.reader.closeHandler
    if (handler === undefined) {
      // gorilla's default: echo the code without a reason.
      // Not awaited: close() resolves when the socket has closed, and never rejects.
      if (!this.#is(CloseFlag.CloseStarted)) this.close(code, '')
    } else {
      try {
        const result = handler(code, text)
        if (result !== undefined) result.catch(() => {})
      } catch {}
    }
    if (this.#writer.closeSent) this.#handshakeDone()
  }

  defaultPing (data: Buffer): void {
    // A peer that pings and never reads our pongs would make us queue them without end: stop
    // reading until the socket drains, so TCP pushes back on the peer instead.
    if (!this.#writer.pong(data)) this.reader.waitForDrain()
  }

  protocolError (error: ProtocolError): void {
    // As for a close frame: replies to the messages before the bad frame go out first.
    this.#pendingFailure = error
    setImmediate(() => { this.#failConnection(error) })
  }

  /** Fails the connection (RFC 6455 §7.1.7): close frame with the error's code, then end TCP. */
  #failConnection (error: ProtocolError): void {
    this.#pendingFailure = undefined
    this.#flags |= CloseFlag.CloseStarted
    this.#writer.sendCloseNow(formatCloseMessage(error.closeCode, truncateUtf8(error.message, MAX_CONTROL_PAYLOAD - 2)))
    this.#endSocket()
  }

  /**
   * Both close frames are out: the server ends TCP; the client waits for the server to do so
   * (RFC 6455 §7.1.1), up to `closeTimeout`, and answers its end.
   */
  #handshakeDone (): void {
    if (this.#writer.isServer) this.#endSocket()
    else this.#armTimer()
  }

  #armTimer (): void {
    if (this.#timer !== undefined || this.#is(CloseFlag.SocketClosed)) return
    const writer = this.#writer
    const timer = setTimeout(() => { writer.socket.destroy() }, writer.options.closeTimeout)
    timer.unref()
    this.#timer = timer
  }

  /** Ends TCP once both close frames are out (or the peer ended it); what was written before is flushed first. */
  #endSocket (): void {
    this.#armTimer()
    const socket = this.#writer.socket
    if (!socket.writableEnded) socket.end()
  }

  /** The peer ended TCP: end ours too. */
  peerEnded (): void {
    // A peer may end its side right behind its close frame (Chromium ends its HTTP/2 stream so):
    // our answer, due on the next turn (see closeFrame), must still go out before our end.
    if (this.#is(CloseFlag.CloseReceived) && !this.#writer.closeSent) {
      setImmediate(() => { this.#endSocket() })
      return
    }
    this.#endSocket()
  }

  /** The socket closed, however that happened. */
  socketClosed (): void {
    this.#flags |= CloseFlag.SocketClosed
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#resolveClosed?.()
  }

  /** Whether the socket has closed. */
  get isSocketClosed (): boolean {
    return this.#is(CloseFlag.SocketClosed)
  }
}
