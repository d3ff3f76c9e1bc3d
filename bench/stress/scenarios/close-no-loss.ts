import { BINARY, closeFrame, maskedFrame, repeat } from '../../load/frames.js'
import { binaryPayload } from '../../shared/payloads.js'
import { Peer, pool } from '../peer.js'
import { KiB, bump, duration, n, scaled, tally, type Scenario } from '../scenario.js'

const MESSAGES = 100
const CONCURRENCY = 50
const WAIT_MS = 30_000
const DEADLINE_MS = 120_000

export const closeNoLoss: Scenario = {
  name: 'close-no-loss',
  summary: '100 clients each send 100 messages of 1 KiB and a close frame in one write; every echo must come before the close',
  async run (context) {
    const { target, path } = context
    const total = scaled(context, 100, 10)
    const burst = Buffer.concat([repeat(maskedFrame(BINARY, binaryPayload(KiB)), MESSAGES), closeFrame()])
    const outcomes = new Map<string, number>()
    const started = performance.now()
    const begun = await pool(total, CONCURRENCY, Date.now() + DEADLINE_MS, async () => {
      const peer = await Peer.open({ port: target.port, path })
      try {
        peer.socket.write(burst)
        await peer.waitClosed(WAIT_MS)
        const code = peer.client.closeCode
        bump(outcomes, `${peer.messages === MESSAGES ? 'all' : peer.messages} echoes, ${code === undefined ? (peer.done ? 'no close frame' : 'still open') : `close ${code}`}`)
      } finally {
        peer.destroy()
      }
    })
    const ok = outcomes.get('all echoes, close 1000') ?? 0
    const failures: string[] = []
    if (ok < total) failures.push(`${n(total - ok)} of ${n(total)} lost something: ${tally(outcomes)}`)
    if (begun < total) failures.push(`only ${n(begun)} of ${n(total)} began within ${DEADLINE_MS / 1000} s`)
    return {
      figures: `${n(total)} clients × ${MESSAGES} messages + close in one write: ${tally(outcomes)} in ${duration(performance.now() - started)}`,
      failures
    }
  }
}
