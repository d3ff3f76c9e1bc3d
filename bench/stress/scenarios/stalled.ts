import { connect, type Socket } from 'node:net'
import { echoCheck, pool, sleep } from '../peer.js'
import { duration, n, scaled, type Scenario } from '../scenario.js'

const CONCURRENT_CONNECTS = 200
/** How long the harness waits for the server to close them: the default guard is about 10 s. */
const WAIT_BOUND_MS = 45_000
const CONNECT_DEADLINE_MS = 60_000

export const stalledHandshakes: Scenario = {
  name: 'stalled-handshakes',
  summary: '2,000 sockets send half an upgrade request and nothing more; a normal client meanwhile',
  async run (context) {
    const { target, path } = context
    const total = scaled(context, 2000, 20)
    const half = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    const sockets: Socket[] = []
    const closedAfter: number[] = []
    let errors = 0
    let closes = 0
    let closedAll = (): void => {}
    const allClosed = new Promise<void>((resolve) => { closedAll = resolve })
    const stall = (): Promise<void> => new Promise((resolve) => {
      const socket = connect(target.port, '127.0.0.1')
      sockets.push(socket)
      let sentAt = 0
      socket.on('error', () => { errors++ })
      socket.on('data', () => {}) // whatever the server answers (a 408, say) is read and dropped
      socket.on('close', () => {
        if (sentAt > 0) closedAfter.push(performance.now() - sentAt)
        resolve()
        if (++closes >= total) closedAll()
      })
      socket.on('connect', () => {
        socket.write(half, () => { sentAt = performance.now(); resolve() })
      })
    })
    try {
      await pool(total, CONCURRENT_CONNECTS, Date.now() + CONNECT_DEADLINE_MS, stall)
      const stalledAt = performance.now()
      await sleep(1000)
      const served = await echoCheck(target.port, path)
      await Promise.race([allClosed, sleep(Math.max(0, WAIT_BOUND_MS - (performance.now() - stalledAt)))])
      const open = sockets.filter((s) => !s.destroyed).length
      closedAfter.sort((a, b) => a - b)
      const closed = closedAfter.length
      const failures: string[] = []
      if (open > 0) failures.push(`${n(open)} of ${n(total)} still open after ${WAIT_BOUND_MS / 1000} s`)
      if (served instanceof Error) failures.push(`a normal client was not served while they stalled: ${served.message}`)
      const times = closed > 0 ? `; closed after median ${duration(closedAfter[closed >> 1]!)}, max ${duration(closedAfter[closed - 1]!)}` : ''
      return {
        figures: `${n(total)} stalled, ${n(closed)} closed by the server${times}; ${n(open)} still open after ${WAIT_BOUND_MS / 1000} s` +
          `${errors > 0 ? `; ${n(errors)} socket errors` : ''}; a normal client ${served instanceof Error ? `FAILED: ${served.message}` : `was served in ${duration(served)}`} meanwhile`,
        failures
      }
    } finally {
      for (const socket of sockets) socket.destroy()
    }
  }
}
