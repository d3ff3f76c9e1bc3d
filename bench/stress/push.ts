import { once } from 'node:events'
import type { Socket } from 'node:net'

const STALL_MS = 1000

/**
 * Writes `chunk` again and again until `limit` bytes went out, or until the server stopped taking
 * them (no 'drain' for a second, i.e. TCP pushed back), or the socket closed. Returns the bytes written.
 */
export async function pushUntilStalled (socket: Socket, chunk: Buffer, limit: number): Promise<{ sent: number, stalled: boolean }> {
  let sent = 0
  while (sent < limit && !socket.destroyed) {
    sent += chunk.length
    if (socket.write(chunk)) continue
    const drained = await Promise.race([
      once(socket, 'drain').then(() => true, () => false),
      new Promise<boolean>((resolve) => { setTimeout(resolve, STALL_MS, false).unref() })
    ])
    if (!drained) return { sent, stalled: !socket.destroyed }
  }
  return { sent, stalled: false }
}
