import { openClients } from '../../load/open.js'
import { echoCheck } from '../peer.js'
import { KiB, duration, mib, n, scaled, type Scenario } from '../scenario.js'

/** Largest acceptable server RSS per idle connection (after GC). */
const PER_CONNECTION_BOUND = 32 * KiB

export const idle: Scenario = {
  name: 'idle',
  summary: '10,000 connections opened (200 connecting at a time) and held idle; then a fresh client',
  async run (context) {
    const { target, path } = context
    const wanted = scaled(context, 10_000, 100)
    const count = Math.min(wanted, context.maxConnections)
    const before = await target.sampleAfterGc()
    const started = performance.now()
    let lost = 0
    const clients = await openClients(count, { port: target.port, path, transport: 'ws', deflate: false, size: 0 }, {
      opened: () => {},
      messages: () => {},
      closed: () => { lost++ }
    })
    try {
      const openMs = performance.now() - started
      const holding = await target.sampleAfterGc()
      const perConnection = (holding.rss - before.rss) / count
      const served = await echoCheck(target.port, path)
      const failures: string[] = []
      if (perConnection > PER_CONNECTION_BOUND) failures.push(`${(perConnection / KiB).toFixed(1)} KiB per connection (bound ${PER_CONNECTION_BOUND / KiB})`)
      if (served instanceof Error) failures.push(`a fresh client was not served: ${served.message}`)
      if (lost > 0) failures.push(`${n(lost)} idle connections were closed`)
      const reduced = count < wanted ? ` (not ${n(wanted)}: ulimit -n)` : ''
      return {
        figures: `${n(count)}${reduced} opened in ${duration(openMs)}; held: RSS after GC ${mib(holding.rss - before.rss)} = ${(perConnection / KiB).toFixed(1)} KiB per connection, ` +
          `fds +${n(holding.fds - before.fds)}; a fresh client ${served instanceof Error ? `FAILED: ${served.message}` : `served in ${duration(served)}`}`,
        failures
      }
    } finally {
      for (const client of clients) client.socket.destroy()
    }
  }
}
