import { BINARY, maskedFrame } from '../../load/frames.js'
import { binaryPayload } from '../../shared/payloads.js'
import { Peer, pool, sleep } from '../peer.js'
import { KiB, MiB, duration, n, scaled, type Scenario } from '../scenario.js'

const CONCURRENCY = 200
const OPEN_TIMEOUT_MS = 10_000
const DEADLINE_MS = 120_000

export const resets: Scenario = {
  name: 'resets',
  summary: '2,000 clients upgrade, send 1 KiB of a 64 KiB message, then reset the connection (RST); 200 at a time',
  afterGcRssBound: 64 * MiB,
  afterGcHeapBound: 8 * MiB,
  async run (context) {
    const { target, path } = context
    const total = scaled(context, 2000, 20)
    // The frame's header announces 64 KiB; only the first KiB of its payload is ever sent.
    const partial = maskedFrame(BINARY, binaryPayload(64 * KiB)).subarray(0, 14 + KiB)
    let reset = 0
    let refused = 0
    const started = performance.now()
    const cycle = async (): Promise<void> => {
      const peer = new Peer({ port: target.port, path })
      if (!await peer.until(() => peer.client.open, OPEN_TIMEOUT_MS)) {
        refused++
        peer.destroy()
        return
      }
      peer.socket.write(partial)
      // A moment for the server to be in the middle of reading that message.
      await sleep(2)
      peer.socket.resetAndDestroy()
      reset++
    }
    const begun = await pool(total, CONCURRENCY, Date.now() + DEADLINE_MS, cycle)
    const failures: string[] = []
    if (refused > 0) failures.push(`${n(refused)} upgrades failed`)
    if (begun < total) failures.push(`only ${n(begun)} of ${n(total)} began within ${DEADLINE_MS / 1000} s`)
    return {
      figures: `${n(reset)} of ${n(total)} connections reset mid-message in ${duration(performance.now() - started)}`,
      failures
    }
  }
}
