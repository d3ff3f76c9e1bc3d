import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** Descriptors beyond the connections themselves: the servers' IPC, stdio, listeners, libuv. */
export const FD_HEADROOM = 1024

/** This process's open-file limits (Linux /proc/self/limits; 1024 when unknown). */
export function fdLimits (): { soft: number, hard: number } {
  try {
    const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    const parse = (text: string | undefined): number => text === 'unlimited' ? 1_048_576 : Number(text ?? 1024)
    return { soft: parse(match?.[1]), hard: parse(match?.[2]) }
  } catch {
    return { soft: 1024, hard: 1024 }
  }
}

const RAISED = 'STRESS_FD_LIMIT_RAISED'

/**
 * `ulimit -n` is per process and Node cannot raise its own: when the soft limit is below `needed`
 * and the hard one allows it, this runs the harness again under `sh -c 'ulimit -n …'` (its servers
 * inherit the limit) and resolves with that run's exit code. Resolves undefined when no re-run is
 * needed or possible.
 */
export function rerunWithFdLimit (needed: number): Promise<number> | undefined {
  const { soft, hard } = fdLimits()
  if (soft >= needed || hard < needed || process.env[RAISED] !== undefined) return undefined
  const command = [process.execPath, ...process.execArgv, ...process.argv.slice(1)]
  const child = spawn('sh', ['-c', `ulimit -n ${needed} && exec "$@"`, 'sh', ...command], { stdio: 'inherit', env: { ...process.env, [RAISED]: String(soft) } })
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128))))
}

/** A sentence about the limit for the report's header. */
export function fdLimitNote (needed: number): string {
  const { soft, hard } = fdLimits()
  const raisedFrom = process.env[RAISED]
  const raised = raisedFrom !== undefined ? ` (raised from ${raisedFrom} for this run)` : ''
  if (soft >= needed) return `ulimit -n ${soft}${raised}, servers inherit it`
  return `ulimit -n ${soft} (hard ${hard}) is below the ${needed} this run needs: idle connections are reduced to fit; raise it with \`ulimit -n ${needed}\``
}
