import { BenchClient, type ClientHooks } from '../load/client.js'
import { TEXT, closeFrame, maskedFrame } from '../load/frames.js'
import { textPayload } from '../shared/payloads.js'

/** Where and how a peer connects. */
export interface PeerSettings {
  port: number
  path: string
  /** Offer permessage-deflate (with client_no_context_takeover). */
  deflate?: boolean
}

const PROBE_MESSAGE = maskedFrame(TEXT, textPayload(32))
const CLOSE = closeFrame()

/**
 * One stress client: the bench's BenchClient (hand-built handshake, frames counted from their
 * headers, close code and pongs noted), with promises for "opened", "n messages" and "closed".
 */
export class Peer {
  readonly client: BenchClient
  messages = 0
  /** The socket error, if any, once closed. */
  error: Error | undefined
  readonly opened: Promise<void>
  readonly closed: Promise<void>
  #changed: Array<() => void> = []

  constructor (settings: PeerSettings) {
    let open = (): void => {}
    let refuse = (_error: Error): void => {}
    let end = (): void => {}
    this.opened = new Promise((resolve, reject) => { open = resolve; refuse = reject })
    this.closed = new Promise((resolve) => { end = resolve })
    // Nobody needs to await `opened` once the peer is gone.
    this.opened.catch(() => {})
    const hooks: ClientHooks = {
      opened: () => { open(); this.#notify() },
      messages: (_client, count) => { this.messages += count; this.#notify() },
      closed: (client, error) => {
        this.error = error
        if (!client.open) refuse(error ?? new Error('closed before the upgrade completed'))
        end()
        this.#notify()
      }
    }
    this.client = new BenchClient(0, { port: settings.port, path: settings.path, transport: 'ws', deflate: settings.deflate ?? false, size: 0 }, hooks)
  }

  /** Connects and completes the upgrade; rejects when that fails. */
  static async open (settings: PeerSettings): Promise<Peer> {
    const peer = new Peer(settings)
    await peer.opened
    return peer
  }

  get socket (): BenchClient['socket'] {
    return this.client.socket
  }

  get done (): boolean {
    return this.client.done
  }

  /**
   * Resolves true once `test()` holds, false if the peer closed first or `timeoutMs` passed. It is
   * checked when the peer opens, gets messages or closes, and every `pollMs` if given (for what
   * those events do not cover, such as pongs).
   */
  async until (test: () => boolean, timeoutMs: number, pollMs = timeoutMs): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!test()) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      if (this.done) return test()
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, pollMs))
        this.#changed.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return true
  }

  /** Waits for the socket to close (false on timeout). */
  waitClosed (timeoutMs: number): Promise<boolean> {
    return this.until(() => this.done, timeoutMs)
  }

  /** Sends a close frame with 1000. */
  sendClose (): void {
    this.socket.write(CLOSE)
  }

  destroy (): void {
    this.socket.destroy()
  }

  #notify (): void {
    for (const wake of this.#changed.splice(0)) wake()
  }
}

/**
 * Whether the server serves a new client: upgrade, one 32 B echo, closing handshake. Resolves
 * with the milliseconds it took, or with an Error saying what went wrong.
 */
export async function echoCheck (port: number, path: string, timeoutMs = 10_000): Promise<number | Error> {
  const started = performance.now()
  const peer = new Peer({ port, path })
  try {
    if (!await peer.until(() => peer.client.open, timeoutMs)) return peer.error ?? new Error(`no upgrade within ${timeoutMs / 1000} s`)
    peer.socket.write(PROBE_MESSAGE)
    if (!await peer.until(() => peer.messages >= 1, timeoutMs)) return new Error(peer.done ? 'closed before the echo' : `no echo within ${timeoutMs / 1000} s`)
    const ms = performance.now() - started
    peer.sendClose()
    await peer.waitClosed(timeoutMs)
    return ms
  } finally {
    peer.destroy()
  }
}

/**
 * Runs `task(i)` for i = 0 … total-1, at most `concurrency` at a time, starting no new task
 * after `deadline` (a Date.now() value). Resolves with how many were started.
 */
export async function pool (total: number, concurrency: number, deadline: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total && Date.now() < deadline) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker))
  return next
}

/** Resolves after `ms` milliseconds. */
export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
