import type { Job, ServerKind, Transport } from '../shared/messages.js'
import type { Settings } from './args.js'

/** A target from the issue, as a ratio of ours to another server's median. */
export interface Target {
  against: ServerKind
  /** Ours must be at least this multiple (throughput) ... */
  min?: number
  /** ... or at most this multiple (memory). */
  max?: number
}

/** One row group of the report: a server mode, a job per server, and how to read the result. */
export interface Scenario {
  /** Unique key; (g) has two variants. */
  key: string
  letter: string
  title: string
  mode: 'echo' | 'broadcast'
  compress: boolean
  /** rate: higher msgs/s wins; rss: lower KiB per idle connection wins. */
  metric: 'rate' | 'rss'
  job: (port: number, transport: Transport, settings: Settings, manyConnections: number) => Job
  /** Wait for the kernel's TIME_WAIT sockets of earlier runs to go before measuring (handshakes). */
  drainTimeWait?: boolean
  target?: Target
}

const KiB = 1024

function echo (connections: number, size: number, text: boolean, inFlight: number, deflate = false) {
  return (port: number, transport: Transport, s: Settings): Job => ({
    type: 'echo', port, transport, connections, size: s.messageSize ?? size, text, inFlight, deflate: deflate && transport === 'ws', warmupMs: s.warmupMs, durationMs: s.durationMs
  })
}

function idle (deflate: boolean) {
  return (port: number, transport: Transport, _s: Settings, n: number): Job => ({
    type: 'idle', port, transport, connections: n, deflate: deflate && transport === 'ws'
  })
}

/** Scenarios (a)-(h) of issue 5, in report order. */
export const SCENARIOS: Scenario[] = [
  { key: 'a', letter: 'a', title: '100 conns, 32 B text echo, 1 in flight', mode: 'echo', compress: false, metric: 'rate', job: echo(100, 32, true, 1), target: { against: 'tcp', min: 0.97 } },
  { key: 'b', letter: 'b', title: '100 conns, 32 B binary echo, 16 in flight', mode: 'echo', compress: false, metric: 'rate', job: echo(100, 32, false, 16), target: { against: 'fastify-websocket', min: 3 } },
  { key: 'c', letter: 'c', title: '10 conns, 64 KiB binary echo, 1 in flight', mode: 'echo', compress: false, metric: 'rate', job: echo(10, 64 * KiB, false, 1), target: { against: 'tcp', min: 0.8 } },
  { key: 'd', letter: 'd', title: '1 conn, 1 MiB binary echo, 1 in flight', mode: 'echo', compress: false, metric: 'rate', job: echo(1, KiB * KiB, false, 1), target: { against: 'tcp', min: 0.8 } },
  { key: 'e', letter: 'e', title: '100 conns, 1 KiB JSON text echo, permessage-deflate, 1 in flight', mode: 'echo', compress: true, metric: 'rate', job: echo(100, KiB, true, 1, true), target: { against: 'fastify-websocket', min: 3 } },
  {
    key: 'f',
    letter: 'f',
    title: 'broadcast 1 KiB to N conns (ours: one publish to a topic all subscribed to; ws, @fastify/websocket: loop of ws.send; TCP: loop of write)',
    mode: 'broadcast',
    compress: false,
    metric: 'rate',
    job: (port, transport, s, n) => ({ type: 'broadcast', port, transport, connections: n, size: KiB, repeats: s.broadcastRepeats }),
    target: { against: 'ws', min: 2 }
  },
  { key: 'g', letter: 'g', title: 'RSS per idle connection, N conns, no compression', mode: 'echo', compress: false, metric: 'rss', job: idle(false), target: { against: 'tcp', max: 1.25 } },
  { key: 'g+deflate', letter: 'g', title: 'RSS per idle connection, N conns, permessage-deflate after one 1 KiB echo each', mode: 'echo', compress: true, metric: 'rss', job: idle(true) },
  {
    key: 'h',
    letter: 'h',
    title: 'handshakes/s: connect, one 32 B echo, close; 50 concurrent',
    mode: 'echo',
    compress: false,
    metric: 'rate',
    job: (port, transport, s) => ({ type: 'handshake', port, transport, concurrency: s.handshakeConcurrency, size: 32, warmupMs: s.warmupMs, durationMs: s.durationMs }),
    drainTimeWait: true,
    target: { against: 'fastify-websocket', min: 1.2 }
  }
]

/** The scenarios `settings` selects, in report order; with --size the echo scenarios say their size. */
export function selectScenarios (settings: Settings): Scenario[] {
  const selected = SCENARIOS.filter((s) => settings.scenarios.includes(s.letter))
  const size = settings.messageSize
  if (size === undefined) return selected
  return selected.map((s) => s.mode === 'echo' ? { ...s, title: `${s.title}, here with ${size} B messages (--size)` } : s)
}
