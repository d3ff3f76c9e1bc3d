import { BINARY, maskedFrame } from '../../load/frames.js'
import { binaryPayload } from '../../shared/payloads.js'
import { Peer, sleep } from '../peer.js'
import { pushUntilStalled } from '../push.js'
import { KiB, MiB, mib, n, scaled, type Scenario } from '../scenario.js'

const OFFER_PER_CLIENT = 16 * MiB

export const slowReaders: Scenario = {
  name: 'slow-readers',
  summary: '50 clients send 64 KiB messages (up to 16 MiB each) and never read the echoes',
  peakRssBound: 256 * MiB,
  async run (context) {
    const { target, path } = context
    const count = scaled(context, 50, 5)
    const frame = maskedFrame(BINARY, binaryPayload(64 * KiB))
    const peers = await Promise.all(Array.from({ length: count }, () => Peer.open({ port: target.port, path })))
    // They read nothing: the echoes fill the server's socket buffers, then TCP pushes back.
    for (const peer of peers) peer.socket.pause()
    try {
      const started = performance.now()
      const results = await Promise.all(peers.map((peer) => pushUntilStalled(peer.socket, frame, OFFER_PER_CLIENT)))
      const seconds = (performance.now() - started) / 1000
      // Held a moment longer, so the RSS sampler sees the server at its fullest.
      await sleep(1000)
      const offered = results.reduce((sum, r) => sum + r.sent, 0)
      const stalled = results.filter((r) => r.stalled).length
      const closed = peers.filter((peer) => peer.done).length
      const failures = closed > 0 ? [`the server closed ${closed} of the slow readers`] : []
      return {
        figures: `${n(count)} clients wrote ${mib(offered, false)} of 64 KiB messages in ${seconds.toFixed(1)} s; ${stalled} of them pushed back by the server (TCP) before ${mib(OFFER_PER_CLIENT, false)} each`,
        failures
      }
    } finally {
      for (const peer of peers) peer.destroy()
    }
  }
}
