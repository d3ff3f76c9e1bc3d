import { TEXT, maskedFrame } from '../../load/frames.js'
import { textPayload } from '../../shared/payloads.js'
import { Peer, pool } from '../peer.js'
import { MiB, bump, duration, n, scaled, tally, type Scenario } from '../scenario.js'

const CONCURRENCY = 200
const STEP_TIMEOUT_MS = 10_000
const DEADLINE_MS = 300_000

export const churn: Scenario = {
  name: 'churn',
  summary: '20,000 cycles of connect, upgrade, one 32 B echo, closing handshake; 200 at a time',
  afterGcRssBound: 64 * MiB,
  afterGcHeapBound: 8 * MiB,
  async run (context) {
    const { target, path } = context
    const total = scaled(context, 20_000, 100)
    const message = maskedFrame(TEXT, textPayload(32))
    const failed = new Map<string, number>()
    let ok = 0
    const started = performance.now()
    const cycle = async (): Promise<void> => {
      const peer = new Peer({ port: target.port, path })
      try {
        if (!await peer.until(() => peer.client.open, STEP_TIMEOUT_MS)) return bump(failed, describe(peer, 'upgrade'))
        peer.socket.write(message)
        if (!await peer.until(() => peer.messages >= 1, STEP_TIMEOUT_MS)) return bump(failed, describe(peer, 'echo'))
        peer.sendClose()
        if (!await peer.waitClosed(STEP_TIMEOUT_MS)) return bump(failed, 'no TCP close after the closing handshake')
        if (peer.client.closeCode !== 1000) return bump(failed, `close ${String(peer.client.closeCode ?? 'frame missing')}`)
        ok++
      } finally {
        peer.destroy()
      }
    }
    const begun = await pool(total, CONCURRENCY, Date.now() + DEADLINE_MS, cycle)
    const ms = performance.now() - started
    const failures: string[] = []
    const failedCount = begun - ok
    if (failedCount > 0) failures.push(`${n(failedCount)} cycles failed (${tally(failed)})`)
    if (begun < total) failures.push(`only ${n(begun)} of ${n(total)} cycles began within ${DEADLINE_MS / 1000} s`)
    return {
      figures: `${n(ok)} of ${n(total)} cycles ok, ${n(failedCount)} failed, in ${duration(ms)} (${n(Math.round(ok / (ms / 1000)))}/s, ${CONCURRENCY} at a time)`,
      failures
    }
  }
}

function describe (peer: Peer, step: string): string {
  const code = (peer.error as { code?: string } | undefined)?.code
  if (code !== undefined) return `${code} before the ${step}`
  return peer.done ? `closed before the ${step}` : `no ${step} within ${STEP_TIMEOUT_MS / 1000} s`
}
