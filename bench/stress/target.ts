import type { ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { DEFAULT_PLUGIN_READ_LIMIT } from '../../lib/plugin/options.js'
import { ROOT, spawnNode, stopChild, waitForMessage } from '../runner/procs.js'
import type { ProbeAnswer, ProbeQuery } from './probe.js'

const MiB = 1024 * 1024
const START_TIMEOUT_MS = 30_000
const GC_TIMEOUT_MS = 30_000

/** A server the stress scenarios run against. */
export interface TargetSpec {
  name: 'echo' | 'plugin'
  /** What the report calls it. */
  label: string
  file: string
  /** The read limit the server runs with (what a deflate bomb must inflate past). */
  readLimit: number
}

export const TARGETS: TargetSpec[] = [
  // examples/echo.ts sets readLimit to 64 MiB (its conformance clients send large messages).
  { name: 'echo', label: 'npm run echo (examples/echo.ts)', file: 'examples/echo.ts', readLimit: 64 * MiB },
  { name: 'plugin', label: 'register(fastifyWsconn) with defaults (bench/stress/plugin-server.ts)', file: 'bench/stress/plugin-server.ts', readLimit: DEFAULT_PLUGIN_READ_LIMIT }
]

/** What is measured about the server process from outside. */
export interface ServerSample {
  rss: number
  fds: number
}

/**
 * One target server in its own process, started as its npm script starts it (PORT=0, through
 * tsx), plus the probe that runs a GC on request. Memory and descriptors are read from /proc.
 */
export class TargetProcess {
  readonly spec: TargetSpec
  readonly port: number
  readonly pid: number
  readonly #child: ChildProcess
  #exit: string | undefined
  #nextId = 1

  private constructor (spec: TargetSpec, child: ChildProcess, port: number) {
    this.spec = spec
    this.#child = child
    this.port = port
    this.pid = child.pid!
    child.on('exit', (code, signal) => { this.#exit = signal ?? `code ${String(code)}` })
  }

  /** Starts the target; `compression` sets COMPRESSION=1. */
  static async start (spec: TargetSpec, compression: boolean): Promise<TargetProcess> {
    const child = spawnNode({
      file: spec.file,
      args: [],
      nodeFlags: ['--expose-gc', '--import', path.join(ROOT, 'bench', 'stress', 'probe.ts')],
      env: { ...process.env, PORT: '0', COMPRESSION: compression ? '1' : '0' },
      pipeStdout: true
    })
    try {
      const port = await readPort(child)
      return new TargetProcess(spec, child, port)
    } catch (err) {
      await stopChild(child)
      throw err
    }
  }

  /** How the process ended (a signal or an exit code), undefined while it runs. */
  get exited (): string | undefined {
    return this.#exit
  }

  /** VmRSS and the number of open descriptors, right now. */
  sample (): ServerSample {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8')
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
    return { rss, fds: readdirSync(`/proc/${this.pid}/fd`).length }
  }

  /** Has the server collect its garbage, then samples it, with the JS heap it uses. */
  async sampleAfterGc (): Promise<ServerSample & { heapUsed: number }> {
    const id = this.#nextId++
    const answer = waitForMessage(this.#child, (m): m is ProbeAnswer => (m as ProbeAnswer)?.probe === 'gc-done' && (m as ProbeAnswer).id === id, GC_TIMEOUT_MS, `${this.spec.name} GC`)
    this.#child.send({ probe: 'gc', id } satisfies ProbeQuery)
    const { heapUsed } = await answer
    return { ...this.sample(), heapUsed }
  }

  stop (): Promise<void> {
    return stopChild(this.#child)
  }
}

/** Reads the server's first line ("... listening on ws://127.0.0.1:PORT/echo ..."). */
function readPort (child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => done(new Error(`no "listening" line within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS)
    const onData = (chunk: Buffer): void => {
      text += chunk.toString()
      const match = /ws:\/\/[^\s:]+:(\d+)\//.exec(text)
      if (match !== null) done(undefined, Number(match[1]))
    }
    const onExit = (code: number | null, signal: string | null): void => {
      done(new Error(`server exited (${signal ?? `code ${String(code)}`}) before listening: ${text.trim()}`))
    }
    const done = (error: Error | undefined, port = 0): void => {
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.off('exit', onExit)
      // Keep draining its stdout, so the server never blocks on a full pipe.
      child.stdout!.resume()
      if (error === undefined) resolve(port)
      else reject(error)
    }
    child.stdout!.on('data', onData)
    child.on('exit', onExit)
  })
}
