import { readFileSync } from 'node:fs'

/** Descriptors beyond the connections themselves: the servers' IPC, stdio, listeners, libuv. */
export const FD_HEADROOM = 1024

/**
 * This process's soft open-file limit (Linux /proc/self/limits; 1024 when unknown). Node raises
 * its soft limit to the hard one at start, so this is in effect `ulimit -Hn`, and the servers,
 * being Node processes too, get the same.
 */
export function fdLimit (): number {
  try {
    const match = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return match?.[1] === 'unlimited' ? 1_048_576 : Number(match?.[1] ?? 1024)
  } catch {
    return 1024
  }
}

/** A sentence about the limit for the report's header. */
export function fdLimitNote (needed: number): string {
  const limit = fdLimit()
  if (limit >= needed) return `open-file limit ${limit} (Node raises the soft limit to the hard one; the servers get the same)`
  return `open-file limit ${limit} is below the ${needed} this run needs: idle connections are reduced to fit; raise the hard limit (ulimit -Hn ${needed}, as root or in limits.conf)`
}
