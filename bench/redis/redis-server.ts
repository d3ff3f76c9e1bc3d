import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { stopChild } from '../runner/procs.js'

const BINARY = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((file) => existsSync(file))
const START_TIMEOUT_MS = 10_000

/** The redis-server both server processes share: on a free port, without persistence, stopped at the end. */
export class BenchRedis {
  readonly port: number
  readonly version: string
  readonly #child: ChildProcess

  private constructor (port: number, version: string, child: ChildProcess) {
    this.port = port
    this.version = version
    this.#child = child
  }

  /** Starts redis-server (pinned to `cpu` when given) and resolves once it accepts connections. */
  static async start (cpu: number | undefined): Promise<BenchRedis> {
    if (BINARY === undefined) throw new Error('redis-server not found: install Debian\'s redis-server package (apt-get install redis-server)')
    const port = await freePort()
    const command = [BINARY, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
    const argv = cpu === undefined ? command : ['taskset', '-c', String(cpu), ...command]
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] })
    process.on('exit', () => child.kill('SIGKILL'))
    let log = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within ${START_TIMEOUT_MS / 1000} s:\n${log}`)), START_TIMEOUT_MS)
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        log += chunk
        if (log.includes('Ready to accept connections')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`redis-server exited (code ${String(code)}):\n${log}`))
      })
    })
    child.stdout!.resume()
    return new BenchRedis(port, /version=(\S+?),/.exec(log)?.[1] ?? 'unknown', child)
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** CPU microseconds (user + system) redis-server used so far, from /proc; NaN elsewhere. */
  cpuMicros (): number {
    try {
      const stat = readFileSync(`/proc/${this.#child.pid!}/stat`, 'utf8')
      // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLOCK_TICKS
    } catch {
      return NaN
    }
  }

  stop (): Promise<void> {
    return stopChild(this.#child)
  }
}

/** Linux's USER_HZ, which /proc/PID/stat counts in (100 on every common build). */
const CLOCK_TICKS = 100

/** A TCP port nothing listens on right now. */
function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
