// A bench server process: `node --import tsx bench/servers/main.ts <kind> <echo|broadcast> [--compress] [--ours=auto] [--http2]`.
// --http2 (ours only) serves the plugin's route over HTTP/2 instead of HTTP/1.1; --tls (ours only) over TLS.
// [--tls]
// With --profile=FILE it writes a CPU profile of the measured window. It listens on 127.0.0.1, reports its port over IPC, answers the runner's queries (CPU time,
// RSS after GC, open connections) and exits when the runner goes away or sends SIGTERM.
import { performance } from 'node:perf_hooks'
import { writeHeapSnapshot } from 'node:v8'
import type { ServerAnswer, ServerKind, ServerQuery, ServerReady } from '../shared/messages.js'
import { broadcastPayload } from '../shared/payloads.js'
import { startFastifyWebsocket } from './fastify-websocket.js'
import { startTcp } from './tcp.js'
import { startWs } from './ws.js'
import { startWsconn, type OursVia } from './wsconn.js'
import { startWsconnBare } from './wsconn-bare.js'
import type { BenchServer, ServerSettings } from './types.js'
import { WindowProfiler } from './window-profiler.js'

const gc = (globalThis as { gc?: () => void }).gc

async function main (): Promise<void> {
  const [kind, mode] = process.argv.slice(2) as [ServerKind, ServerSettings['mode']]
  const flags = process.argv.slice(4)
  const via = (flags.find((f) => f.startsWith('--ours='))?.slice(7) ?? 'auto') as OursVia
  const profileFile = flags.find((f) => f.startsWith('--profile='))?.slice(10)
  const profiler = profileFile === undefined ? undefined : new WindowProfiler(profileFile)
  const settings: ServerSettings = { mode, compress: flags.includes('--compress'), broadcastPayload: broadcastPayload(), http2: flags.includes('--http2'), tls: flags.includes('--tls') }
  const server = await start(kind, settings, via)
  process.on('message', (message: ServerQuery) => { answer(server, message, profiler).catch(fail) })
  const ready: ServerReady = { event: 'ready', port: server.port, impl: server.impl }
  process.send!(ready)
}

function start (kind: ServerKind, settings: ServerSettings, via: OursVia): Promise<BenchServer> {
  if ((settings.http2 === true || settings.tls === true) && kind !== 'wsconn') throw new Error(`--http2 and --tls: only for ours (wsconn), not ${kind}`)
  switch (kind) {
    case 'wsconn': return startWsconn(settings, via)
    case 'wsconn-bare': return startWsconnBare(settings)
    case 'fastify-websocket': return startFastifyWebsocket(settings)
    case 'ws': return startWs(settings)
    case 'tcp': return startTcp(settings)
  }
  throw new Error(`unknown server kind ${String(kind)}`)
}

async function answer (server: BenchServer, { id, query, file }: ServerQuery, profiler: WindowProfiler | undefined): Promise<void> {
  let value = 0
  if (query === 'cpu') {
    await profiler?.onCpuQuery()
    const { user, system } = process.cpuUsage()
    const reply: ServerAnswer = { id, value: user + system, wallMs: performance.now() }
    process.send!(reply)
    return
  }
  if (query === 'rss') {
    // Two collections with a turn of the event loop between them, so weak/finalised objects go too.
    gc?.()
    await new Promise((resolve) => setImmediate(resolve))
    gc?.()
    const { rss, heapUsed } = process.memoryUsage()
    const reply: ServerAnswer = { id, value: rss, heapUsed }
    process.send!(reply)
    return
  } else if (query === 'heap-snapshot') {
    writeHeapSnapshot(file)
  } else {
    value = server.connections()
  }
  const reply: ServerAnswer = { id, value }
  process.send!(reply)
}

// --cpu-prof writes its profile on a normal exit, which SIGTERM's default action is not.
process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
main().catch(fail)

function fail (err: unknown): void {
  console.error('bench server failed:', err)
  process.exit(1)
}
