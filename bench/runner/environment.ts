import { spawnSync } from 'node:child_process'
import os from 'node:os'
import type { Settings } from './args.js'

/** Fixed glibc malloc thresholds: without them the dynamic mmap threshold makes 1 MiB results bimodal. */
export const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: String(8 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_: String(16 * 1024 * 1024) }

/** Where the run happens and how its processes are placed. */
export interface Environment {
  cores: number
  cpuModel: string
  node: string
  /** CPU for server processes and for the load generator; undefined when not pinned. */
  serverCpu: number | undefined
  generatorCpu: number | undefined
  pinNote: string
  /** The open-file limit children run with (raised up to the hard limit when needed). */
  fdLimit: number
  /** Set when the children must raise their soft limit to `fdLimit` themselves. */
  raiseFdLimit: boolean
  /** Connections for (f)/(g) after applying the file-descriptor limit. */
  manyConnections: number
  fdNote: string
}

// Descriptors beyond the connections themselves: listeners, IPC, stdio, libuv internals.
const FD_HEADROOM = 512

/** Looks at cores, taskset and `ulimit -n`, and decides pinning and the (f)/(g) connection count. */
export function inspectEnvironment (settings: Settings): Environment {
  const cores = os.availableParallelism()
  const hasTaskset = spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0
  const pinned = settings.pin && hasTaskset && cores >= 2
  const pinNote = pinned
    ? 'taskset: servers on CPU 0, load generator on CPU 1'
    : `not pinned (${!settings.pin ? '--no-pin' : !hasTaskset ? 'no taskset' : 'one core'})`
  const limits = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).stdout.trim().split('\n')
  const soft = parseLimit(limits[0])
  const hard = parseLimit(limits[1])
  const needed = settings.manyConnections + FD_HEADROOM
  let fdLimit = soft
  let manyConnections = settings.manyConnections
  let fdNote = `ulimit -n ${soft}`
  if (needed > soft && hard >= needed) {
    fdLimit = needed
    fdNote = `ulimit -n ${soft}, raised to ${needed} for the children`
  } else if (needed > soft) {
    fdLimit = Math.max(soft, hard)
    manyConnections = Math.max(1, fdLimit - FD_HEADROOM)
    fdNote = `(f)/(g) use ${manyConnections} connections, not ${settings.manyConnections}: ulimit -n is ${soft} (hard ${hard}); raise it with \`ulimit -n ${needed}\` as root or in limits.conf`
  }
  return {
    cores,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
    node: process.version,
    serverCpu: pinned ? 0 : undefined,
    generatorCpu: pinned ? 1 : undefined,
    pinNote,
    fdLimit,
    raiseFdLimit: fdLimit > soft,
    manyConnections,
    fdNote
  }
}

function parseLimit (text: string | undefined): number {
  if (text === undefined || text === '') return 1024
  return text === 'unlimited' ? 1_048_576 : Number(text)
}

/** The servers' environment for a malloc mode (and where ours is loaded from), and a sentence saying what the mode is. */
export function serverEnv (mode: 'fixed' | 'default', oursRoot: string): { env: NodeJS.ProcessEnv, note: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_OURS_ROOT: oursRoot }
  delete env.MALLOC_MMAP_THRESHOLD_
  delete env.MALLOC_TRIM_THRESHOLD_
  if (mode === 'default') return { env, note: 'servers run with glibc default malloc thresholds (dynamic mmap threshold)' }
  // A threshold set in the runner's own environment wins, so one can be varied without editing this file.
  const mmap = process.env.MALLOC_MMAP_THRESHOLD_ ?? MALLOC_ENV.MALLOC_MMAP_THRESHOLD_
  const trim = process.env.MALLOC_TRIM_THRESHOLD_ ?? MALLOC_ENV.MALLOC_TRIM_THRESHOLD_
  Object.assign(env, { MALLOC_MMAP_THRESHOLD_: mmap, MALLOC_TRIM_THRESHOLD_: trim })
  return { env, note: `servers run with MALLOC_MMAP_THRESHOLD_=${mmap} MALLOC_TRIM_THRESHOLD_=${trim} (fixed; --malloc=default runs without)` }
}

/** Pins every thread of a running process to one CPU; false when taskset failed. */
export function pinProcess (pid: number, cpu: number): boolean {
  return spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' }).status === 0
}
