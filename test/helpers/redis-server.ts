// A real redis-server (Debian's redis-server package, which .ci/run installs) for the pub/sub
// tests: on a free port, without persistence, killed with SIGKILL when a test needs Redis to
// vanish and restarted on the same port, and always killed at the test's teardown.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { promisify } from 'node:util'

const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path))
const REDIS_CLI = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((path) => existsSync(path))

/** Why the Redis tests skip on this machine, or false when redis-server and redis-cli are installed. */
export const skipWithoutRedis: string | false = REDIS_SERVER !== undefined && REDIS_CLI !== undefined
  ? false
  : 'redis-server or redis-cli not found: install Debian\'s redis-server package (apt-get install redis-server; .ci/run does) to run the Redis tests'

/** The major version of the installed redis-server, e.g. 7. */
export async function redisServerMajor (): Promise<number> {
  const { stdout } = await promisify(execFile)(REDIS_SERVER!, ['--version'])
  return Number(/v=(\d+)/.exec(stdout)?.[1])
}

interface Teardown { teardown (fn: () => unknown): void }

const running = new Set<ChildProcess>()
process.on('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** One redis-server process, and its successor on the same port after restart(). */
export class RedisServer {
  readonly port: number
  readonly #extraArgs: string[] | ((port: number) => string[])
  /** Everything the server processes printed on this port so far (their log). */
  log = ''
  #child: ChildProcess | undefined

  private constructor (port: number, extraArgs: string[] | ((port: number) => string[])) {
    this.port = port
    this.#extraArgs = extraArgs
  }

  /** Starts a redis-server on a free port and kills it when `t` ends; `extraArgs` may depend on the port. */
  static async start (t: Teardown, extraArgs: string[] | ((port: number) => string[]) = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), extraArgs)
    t.teardown(() => server.kill())
    await server.restart()
    return server
  }

  /** `redis://127.0.0.1:port`. */
  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Starts redis-server on this port again (after kill()), resolving once it accepts connections. */
  async restart (): Promise<void> {
    const extra = typeof this.#extraArgs === 'function' ? this.#extraArgs(this.port) : this.#extraArgs
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra]
    const child = spawn(REDIS_SERVER!, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    this.#child = child
    running.add(child)
    child.once('exit', () => running.delete(child))
    const started = this.log.length
    const ready = (): boolean => this.log.includes('Ready to accept connections', started)
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { this.log += chunk })
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', () => { if (ready()) resolve() })
      child.once('exit', () => reject(new Error(`redis-server did not start:\n${this.log.slice(started)}`)))
    })
  }

  /** Kills redis-server with SIGKILL (no goodbye to its clients) and waits until it is gone. */
  async kill (): Promise<void> {
    const child = this.#child
    this.#child = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }

  /** Runs one command through redis-cli (a client independent of node-redis); resolves with its reply lines, unquoted. */
  async cli (...args: string[]): Promise<string[]> {
    const { stdout } = await promisify(execFile)(REDIS_CLI!, ['-p', String(this.port), '--raw', ...args])
    return stdout.split('\n').filter((line) => line !== '')
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}
