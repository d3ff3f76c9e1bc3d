import { TEXT, maskedFrame, repeat } from '../../load/frames.js'
import { textPayload } from '../../shared/payloads.js'
import { Peer } from '../peer.js'
import { pushUntilStalled } from '../push.js'
import { MiB, duration, n, scaled, type Scenario } from '../scenario.js'

const PING = 9
const BATCH = 1000
const WAIT_MS = 30_000
const POLL_MS = 10
/** The client that never reads offers this many times `pings`. */
const DEAF_FACTOR = 5

export const pingFlood: Scenario = {
  name: 'ping-flood',
  summary: '100,000 pings (16 B) from one client that reads the pongs; up to 500,000 (125 B, 65 MB) from one that never reads, whose pongs the server must not queue without bound',
  peakRssBound: 64 * MiB,
  async run (context) {
    const { target, path } = context
    const pings = scaled(context, 100_000, 1000)
    const failures: string[] = []

    // A: writes batches of pings as fast as the socket takes them, and reads the pongs.
    const reader = await Peer.open({ port: target.port, path })
    let readerFigures: string
    try {
      const batch = repeat(maskedFrame(PING, textPayload(16)), BATCH)
      const started = performance.now()
      const pushed = await pushUntilStalled(reader.socket, batch, pings / BATCH * batch.length)
      const sent = Math.round(pushed.sent / batch.length) * BATCH
      if (pushed.stalled) failures.push(`the server stopped reading after ${n(sent)} pings although their pongs were read`)
      const answered = await reader.until(() => reader.client.pongs >= sent, WAIT_MS, POLL_MS)
      const ms = performance.now() - started
      const pongs = reader.client.pongs
      if (answered) {
        reader.socket.write(maskedFrame(TEXT, textPayload(32)))
        const echoed = await reader.until(() => reader.messages >= 1, WAIT_MS)
        if (!echoed) failures.push('no echo on the flooded connection afterwards')
        readerFigures = `A: ${n(pongs)} of ${n(sent)} pings answered in ${duration(ms)}, then ${echoed ? 'an echo' : 'NO echo'}`
      } else {
        const code = reader.client.closeCode
        if (!reader.done) failures.push(`only ${n(pongs)} of ${n(sent)} pongs within ${WAIT_MS / 1000} s, and the connection still open`)
        readerFigures = `A: ${n(pongs)} of ${n(sent)} pings answered, then the server closed${code === undefined ? '' : ` with ${code}`}`
      }
    } finally {
      reader.destroy()
    }

    // B: never reads, so its pongs back up in the server, which has to push back (stop reading),
    // drop the connection, or hold them all within the RSS bound.
    const deaf = await Peer.open({ port: target.port, path })
    let deafFigures: string
    try {
      deaf.socket.pause()
      const batch = repeat(maskedFrame(PING, textPayload(125)), BATCH)
      const { sent, stalled } = await pushUntilStalled(deaf.socket, batch, DEAF_FACTOR * pings / BATCH * batch.length)
      const written = Math.round(sent / batch.length * BATCH)
      deafFigures = `B: ${n(written)} pings written, ${stalled ? 'then the server pushed back (TCP)' : deaf.done ? 'then the server closed' : 'all taken (no push-back)'}`
    } finally {
      deaf.destroy()
    }
    return { figures: `${readerFigures}; ${deafFigures}`, failures }
  }
}
