import type { ChildProcess } from 'node:child_process'
import type { ServerAnswer, ServerQuery, ServerReady } from '../shared/messages.js'
import { pinProcess } from '../runner/environment.js'
import { spawnNode, stopChild, waitForMessage } from '../runner/procs.js'
import type { FanoutKind, StartFailure } from './protocol.js'

/** How to start one fan-out server process. */
export interface FanoutLaunch {
  kind: FanoutKind
  redisUrl: string
  env: NodeJS.ProcessEnv
  cpu: number | undefined
  fdLimit: number | undefined
  /** Where to write a CPU profile of the measured window, if anywhere. */
  profileFile?: string
}

const START_TIMEOUT_MS = 60_000
const QUERY_TIMEOUT_MS = 30_000

/** A running fan-out server (bench/redis/server.ts), asked for its CPU time and subscriber count over IPC. */
export class FanoutProcess {
  readonly port: number
  readonly impl: string
  readonly pinned: boolean
  readonly #child: ChildProcess
  readonly #what: string
  #nextId = 1

  private constructor (child: ChildProcess, ready: ServerReady, pinned: boolean, what: string) {
    this.#child = child
    this.port = ready.port
    this.impl = ready.impl
    this.pinned = pinned
    this.#what = what
  }

  /** Starts the server unpinned (so two start in parallel quickly), then pins it once it listens. */
  static async start (launch: FanoutLaunch, name: string): Promise<FanoutProcess> {
    const what = `${launch.kind} server ${name}`
    const child = spawnNode({ file: 'bench/redis/server.ts', args: [launch.kind, `--redis=${launch.redisUrl}`, ...(launch.profileFile === undefined ? [] : [`--profile=${launch.profileFile}`])], env: launch.env, fdLimit: launch.fdLimit })
    try {
      const started = await waitForMessage(child, isStartAnswer, START_TIMEOUT_MS, `${what} start`)
      if (started.event === 'failed') throw new Error(`${what}: ${started.message}`)
      const ready = started
      const pinned = launch.cpu !== undefined && child.pid !== undefined && pinProcess(child.pid, launch.cpu)
      return new FanoutProcess(child, ready, pinned, what)
    } catch (err) {
      await stopChild(child)
      throw err
    }
  }

  /** CPU microseconds so far and the server's clock, for a share of wall time. */
  cpu (): Promise<ServerAnswer> {
    return this.#query('cpu')
  }

  /** Connections subscribed to the topic in this process; rejects when the server reported a failure. */
  async subscribers (): Promise<number> {
    const { value } = await this.#query('connections')
    if (value < 0) throw new Error(`${this.#what} reported a failure (see its stderr)`)
    return value
  }

  stop (): Promise<void> {
    return stopChild(this.#child)
  }

  #query (query: ServerQuery['query']): Promise<ServerAnswer> {
    const id = this.#nextId++
    const answer = waitForMessage(this.#child, (m): m is ServerAnswer => (m as ServerAnswer).id === id, QUERY_TIMEOUT_MS, `${this.#what} ${query} query`)
    this.#child.send({ id, query } satisfies ServerQuery)
    return answer
  }
}

function isStartAnswer (message: unknown): message is ServerReady | StartFailure {
  const event = (message as { event?: string } | undefined)?.event
  return event === 'ready' || event === 'failed'
}
