import { randomBytes } from 'node:crypto'
import { Peer, pool } from '../peer.js'
import { KiB, bump, duration, n, scaled, tally, type Scenario } from '../scenario.js'

const CONCURRENCY = 50
const CHUNK = 4 * KiB
/** Random bytes offered per connection at most; a frame header they form may announce up to 64 KiB. */
const MAX_BYTES = 256 * KiB
const STEP_MS = 20
const WAIT_MS = 10_000
const DEADLINE_MS = 120_000

export const garbage: Scenario = {
  name: 'garbage',
  summary: '200 clients upgrade, then send random bytes (4 KiB every 20 ms, up to 256 KiB) until the server closes',
  async run (context) {
    const { target, path } = context
    const total = scaled(context, 200, 20)
    const outcomes = new Map<string, number>()
    let bytes = 0
    const started = performance.now()
    const begun = await pool(total, CONCURRENCY, Date.now() + DEADLINE_MS, async () => {
      const peer = await Peer.open({ port: target.port, path })
      try {
        for (let sent = 0; sent < MAX_BYTES && !peer.done; sent += CHUNK) {
          peer.socket.write(randomBytes(CHUNK))
          bytes += CHUNK
          await peer.waitClosed(STEP_MS)
        }
        await peer.waitClosed(WAIT_MS)
        const code = peer.client.closeCode
        bump(outcomes, code !== undefined ? `close ${code}` : peer.done ? 'TCP closed without a close frame' : 'still open')
      } finally {
        peer.destroy()
      }
    })
    const failures: string[] = []
    const open = outcomes.get('still open') ?? 0
    if (open > 0) failures.push(`${n(open)} connections still open after ${MAX_BYTES / KiB} KiB of garbage and ${WAIT_MS / 1000} s`)
    const internal = outcomes.get('close 1011') ?? 0
    if (internal > 0) failures.push(`${n(internal)} closed with 1011 (a server error, not a protocol error)`)
    if (begun < total) failures.push(`only ${n(begun)} of ${n(total)} began within ${DEADLINE_MS / 1000} s`)
    return {
      figures: `${n(total)} connections, ${(bytes / KiB / total).toFixed(1)} KiB of garbage each on average, in ${duration(performance.now() - started)}: ${tally(outcomes)}`,
      failures
    }
  }
}
