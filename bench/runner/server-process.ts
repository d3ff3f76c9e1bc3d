import type { ChildProcess } from 'node:child_process'
import type { ServerAnswer, ServerKind, ServerQuery, ServerReady } from '../shared/messages.js'
import { pinProcess } from './environment.js'
import { spawnNode, stopChild, waitForMessage } from './procs.js'

/** How to start one server process. */
export interface ServerLaunch {
  kind: ServerKind
  mode: 'echo' | 'broadcast'
  compress: boolean
  ours: string
  env: NodeJS.ProcessEnv
  cpu: number | undefined
  fdLimit: number | undefined
  /** Extra arguments for bench/servers/main.ts (e.g. --profile=FILE). */
  args: string[]
}

const START_TIMEOUT_MS = 60_000
const QUERY_TIMEOUT_MS = 60_000

/** A running bench server, asked for its CPU time, RSS and connection count over IPC. */
export class ServerProcess {
  readonly kind: ServerKind
  readonly port: number
  readonly impl: string
  readonly pinned: boolean
  readonly #child: ChildProcess
  #nextId = 1

  private constructor (kind: ServerKind, child: ChildProcess, ready: ServerReady, pinned: boolean) {
    this.kind = kind
    this.#child = child
    this.port = ready.port
    this.impl = ready.impl
    this.pinned = pinned
  }

  /** Starts the server unpinned (so several start in parallel quickly), then pins it once it listens. */
  static async start (launch: ServerLaunch): Promise<ServerProcess> {
    const args = [launch.kind, launch.mode, `--ours=${launch.ours}`, ...(launch.compress ? ['--compress'] : []), ...launch.args]
    const child = spawnNode({ file: 'bench/servers/main.ts', args, env: launch.env, fdLimit: launch.fdLimit, nodeFlags: ['--expose-gc', ...serverNodeFlags()] })
    try {
      const ready = await waitForMessage(child, isReady, START_TIMEOUT_MS, `${launch.kind} server start`)
      const pinned = launch.cpu !== undefined && child.pid !== undefined && pinProcess(child.pid, launch.cpu)
      return new ServerProcess(launch.kind, child, ready, pinned)
    } catch (err) {
      await stopChild(child)
      throw err
    }
  }

  /** Asks the server one question and resolves with its answer. */
  query (query: ServerQuery['query'], file?: string): Promise<ServerAnswer> {
    const id = this.#nextId++
    const answer = waitForMessage(this.#child, (m): m is ServerAnswer => (m as ServerAnswer).id === id, QUERY_TIMEOUT_MS, `${this.kind} ${query} query`)
    this.#child.send({ id, query, file } satisfies ServerQuery)
    return answer
  }

  stop (): Promise<void> {
    return stopChild(this.#child)
  }
}

/** Extra Node flags for every server process (BENCH_SERVER_NODE_FLAGS, space-separated), e.g. --trace-gc. */
function serverNodeFlags (): string[] {
  return (process.env.BENCH_SERVER_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== '')
}

function isReady (message: unknown): message is ServerReady {
  return (message as ServerReady)?.event === 'ready'
}
