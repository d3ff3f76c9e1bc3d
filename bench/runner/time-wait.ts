import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

/** Below this many TIME_WAIT sockets a handshake run starts. */
export const TIME_WAIT_CALM = 1000
const MAX_WAIT_MS = 70_000

/** TCP sockets in TIME_WAIT machine-wide (Linux /proc/net/sockstat), or undefined where unknown. */
export function timeWaitSockets (): number | undefined {
  try {
    const match = /^TCP:.*\btw (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'))
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

/**
 * Waits (up to 70 s, the kernel keeps them 60 s) until the TIME_WAIT sockets left by earlier runs
 * are gone: tens of thousands of them make every connect() slower, so a handshake run measured
 * right after another one would pay for its predecessor. Returns the milliseconds waited.
 */
export async function waitForTimeWaitToDrain (): Promise<number> {
  const started = Date.now()
  for (;;) {
    const count = timeWaitSockets()
    if (count === undefined || count < TIME_WAIT_CALM || Date.now() - started >= MAX_WAIT_MS) return Date.now() - started
    await sleep(500)
  }
}
