import { BINARY, deflateMessage, maskedFrame } from '../../load/frames.js'
import { Peer, pool } from '../peer.js'
import { MiB, bump, duration, mib, n, scaled, tally, type Scenario } from '../scenario.js'

const CONCURRENCY = 5
const WAIT_MS = 30_000
const DEADLINE_MS = 120_000
/** Beyond the read limits the bombs may cost: the server's own allocations while it works. */
const SLACK = 128 * MiB

export const deflateBomb: Scenario = {
  name: 'deflate-bomb',
  summary: 'with compression on, 50 frames of zeros compressed ~1000:1 that inflate to 4× the read limit; 5 at a time',
  compression: true,
  // Each inflation may cost up to the read limit before it is refused.
  peakRssBound: (context) => CONCURRENCY * context.target.spec.readLimit + SLACK,
  async run (context) {
    const { target, path } = context
    const bombs = scaled(context, 50, 5)
    const inflated = 4 * target.spec.readLimit
    const frame = maskedFrame(BINARY, deflateMessage(Buffer.alloc(inflated)), true)
    const codes = new Map<string, number>()
    const started = performance.now()
    const begun = await pool(bombs, CONCURRENCY, Date.now() + DEADLINE_MS, async () => {
      const peer = new Peer({ port: target.port, path, deflate: true })
      try {
        if (!await peer.until(() => peer.client.open, WAIT_MS)) return bump(codes, 'upgrade failed')
        if (!/permessage-deflate/i.test(peer.client.extensions)) return bump(codes, 'deflate not negotiated')
        peer.socket.write(frame)
        await peer.waitClosed(WAIT_MS)
        bump(codes, peer.client.closeCode === undefined ? (peer.done ? 'no close frame' : 'still open') : String(peer.client.closeCode))
      } finally {
        peer.destroy()
      }
    })
    const failures: string[] = []
    if ((codes.get('1009') ?? 0) < bombs) failures.push(`${tally(codes)} (1009 expected for all ${n(bombs)})`)
    if (begun < bombs) failures.push(`only ${n(begun)} of ${n(bombs)} began within ${DEADLINE_MS / 1000} s`)
    return {
      figures: `${n(bombs)} frames of ${(frame.length / 1024).toFixed(0)} KiB inflating to ${mib(inflated, false)} (read limit ${mib(target.spec.readLimit, false)}), ${CONCURRENCY} at a time: ${tally(codes)} in ${duration(performance.now() - started)}`,
      failures
    }
  }
}
