import { DEFAULT_MAX_FRAGMENTS } from '../../../lib/options.js'
import { BINARY, maskedFrame } from '../../load/frames.js'
import { Peer } from '../peer.js'
import { MiB, bump, duration, n, scaled, tally, type Scenario } from '../scenario.js'

const WAIT_MS = 60_000

export const fragments: Scenario = {
  name: 'fragments',
  summary: 'one message in 100,000 1-byte fragments (echoed), and one in maxFragments + 1 (1009), on 10 connections each',
  peakRssBound: 128 * MiB,
  async run (context) {
    const { target, path } = context
    const connections = scaled(context, 10, 2)
    const parts = scaled(context, 100_000, 1000)
    const over = DEFAULT_MAX_FRAGMENTS + 1
    const failures: string[] = []

    let started = performance.now()
    const flood = fragmented(parts)
    const echoes = await Promise.all(Array.from({ length: connections }, async () => {
      const peer = await Peer.open({ port: target.port, path })
      try {
        peer.socket.write(flood)
        const echoed = await peer.until(() => peer.messages >= 1, WAIT_MS)
        if (echoed) {
          peer.sendClose()
          await peer.waitClosed(WAIT_MS)
        }
        return echoed
      } finally {
        peer.destroy()
      }
    }))
    const floodMs = performance.now() - started
    const echoed = echoes.filter(Boolean).length
    if (echoed < connections) failures.push(`${connections - echoed} of ${connections} fragmented messages not echoed`)

    started = performance.now()
    const tooMany = fragmented(over)
    const codes = new Map<string, number>()
    await Promise.all(Array.from({ length: connections }, async () => {
      const peer = await Peer.open({ port: target.port, path })
      try {
        peer.socket.write(tooMany)
        await peer.waitClosed(WAIT_MS)
        bump(codes, peer.client.closeCode === undefined ? (peer.done ? 'no close frame' : 'still open') : String(peer.client.closeCode))
      } finally {
        peer.destroy()
      }
    }))
    const overMs = performance.now() - started
    if ((codes.get('1009') ?? 0) < connections) failures.push(`over maxFragments: ${tally(codes)} (1009 expected)`)
    return {
      figures: `${connections}× a message in ${n(parts)} 1-byte fragments: ${echoed} echoed in ${duration(floodMs)}; ` +
        `${connections}× ${n(over)} fragments (maxFragments ${n(DEFAULT_MAX_FRAGMENTS)}): ${tally(codes)} in ${duration(overMs)}`,
      failures
    }
  }
}

/** One binary message of `count` bytes as `count` masked frames of one byte each. */
function fragmented (count: number): Buffer {
  const first = maskedFrame(BINARY, Buffer.of(0x61))
  const middle = maskedFrame(0, Buffer.of(0x62))
  const size = first.length
  const out = Buffer.allocUnsafe(size * count)
  for (let i = 0; i < count; i++) middle.copy(out, i * size)
  first.copy(out, 0)
  // FIN on the last frame only.
  for (let i = 0; i < count - 1; i++) out[i * size] = out[i * size]! & 0x7f
  return out
}
