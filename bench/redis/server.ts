// A fan-out server process: `node --import tsx bench/redis/server.ts <ours|socketio> --redis=URL`.
// It listens on 127.0.0.1, reports its port over IPC, answers the runner's queries (CPU time;
// "connections" is the number of subscribers of the topic here) and exits on SIGTERM or when
// the runner goes away. With --profile=FILE it writes a CPU profile of the measured window.
import { performance } from 'node:perf_hooks'
import type { ServerAnswer, ServerQuery, ServerReady } from '../shared/messages.js'
import { WindowProfiler } from '../servers/window-profiler.js'
import { startOurs } from './ours.js'
import type { FanoutKind, FanoutServer, StartFailure } from './protocol.js'
import { startSocketIo } from './socketio.js'

async function main (): Promise<void> {
  const kind = process.argv[2] as FanoutKind
  const redisUrl = process.argv.slice(3).find((a) => a.startsWith('--redis='))?.slice(8)
  if (redisUrl === undefined) throw new Error('--redis=URL is required')
  const profileFile = process.argv.slice(3).find((a) => a.startsWith('--profile='))?.slice(10)
  const profiler = profileFile === undefined ? undefined : new WindowProfiler(profileFile)
  const server = await start(kind, redisUrl)
  process.on('message', (query: ServerQuery) => {
    answer(server, query, profiler).catch((err: unknown) => { console.error('fan-out server: query failed:', err) })
  })
  process.on('SIGTERM', () => { server.close().finally(() => process.exit(0)) })
  process.send!({ event: 'ready', port: server.port, impl: server.impl } satisfies ServerReady)
}

function start (kind: FanoutKind, redisUrl: string): Promise<FanoutServer> {
  if (kind === 'ours') return startOurs(redisUrl)
  if (kind === 'socketio') return startSocketIo(redisUrl)
  throw new Error(`unknown server kind ${String(kind)}`)
}

async function answer (server: FanoutServer, { id, query }: ServerQuery, profiler: WindowProfiler | undefined): Promise<void> {
  let reply: ServerAnswer
  if (query === 'cpu') {
    await profiler?.onCpuQuery()
    const { user, system } = process.cpuUsage()
    reply = { id, value: user + system, wallMs: performance.now() }
  } else {
    try {
      reply = { id, value: server.subscribers() }
    } catch (err) {
      // An answer the runner cannot mistake for a count: it stops waiting and reports the reason.
      console.error(`fan-out server: ${(err as Error).message}`)
      reply = { id, value: -1 }
    }
  }
  process.send!(reply)
}

process.on('disconnect', () => process.exit(0))
main().catch((err: unknown) => {
  console.error('fan-out server failed:', err)
  // Told to the runner too, so that the report says why instead of "exited with code 1".
  if (process.send === undefined) process.exit(1)
  process.send({ event: 'failed', message: (err as Error).message ?? String(err) } satisfies StartFailure, () => process.exit(1))
})
