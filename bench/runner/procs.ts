import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'

/**
 * The repository root: children run from here so that `--import tsx` resolves. Found upwards
 * from this file, so that it is the same when the test build compiles this file into build/.
 */
export const ROOT = findRoot(path.resolve(__dirname, '..', '..'))

function findRoot (start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir
    if (path.dirname(dir) === dir) return start
  }
}

const children = new Set<ChildProcess>()
let exiting = false

/** How to start a Node child running a TypeScript file. */
export interface NodeChild {
  file: string
  args: string[]
  nodeFlags?: string[]
  env: NodeJS.ProcessEnv
  /** Pin the child to this CPU from its start. */
  cpu?: number
  /** Raise the soft open-file limit of the child to this value first. */
  fdLimit?: number
  /** Give the parent the child's stdout as a stream instead of sharing its own. */
  pipeStdout?: boolean
}

/** Starts a Node child with an IPC channel; it is killed when this process exits or is interrupted. */
export function spawnNode (options: NodeChild): ChildProcess {
  return spawnChild([process.execPath, '--import', 'tsx', ...(options.nodeFlags ?? []), path.join(ROOT, options.file), ...options.args], options)
}

/**
 * Starts any program with Node's IPC channel on fd 3 (NODE_CHANNEL_FD; newline-delimited JSON),
 * pinned and with its file limit raised as asked; it is killed when this process exits.
 */
export function spawnChild (program: string[], options: Pick<NodeChild, 'env' | 'cpu' | 'fdLimit' | 'pipeStdout'>): ChildProcess {
  let command = program
  if (options.cpu !== undefined) command = ['taskset', '-c', String(options.cpu), ...command]
  if (options.fdLimit !== undefined) command = ['sh', '-c', `ulimit -n ${options.fdLimit} && exec "$@"`, 'sh', ...command]
  const child = spawn(command[0]!, command.slice(1), { cwd: ROOT, env: options.env, stdio: ['ignore', options.pipeStdout === true ? 'pipe' : 'inherit', 'inherit', 'ipc'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  return child
}

/** Ends a child: SIGTERM (so a --cpu-prof profile gets written), SIGKILL if it lingers. */
export async function stopChild (child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

function killAll (): void {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
}

/** Makes sure no child outlives the runner, whatever way it ends. */
export function installCleanup (): void {
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (exiting) return
      exiting = true
      process.stderr.write(`\nbench: ${signal}, stopping child processes\n`)
      killAll()
      process.exit(130)
    })
  }
}

/** Resolves with the child's first message matching `accept`, or rejects if it exits or times out. */
export function waitForMessage<T> (child: ChildProcess, accept: (message: unknown) => message is T, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown): void => {
      if (!accept(message)) return
      done()
      resolve(message)
    }
    const onExit = (code: number | null, signal: string | null): void => {
      done()
      reject(new Error(`${what}: process exited (${signal ?? `code ${String(code)}`})`))
    }
    const timer = setTimeout(() => { done(); reject(new Error(`${what}: no answer within ${timeoutMs / 1000} s`)) }, timeoutMs)
    const done = (): void => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}
