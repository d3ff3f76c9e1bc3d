import type { Job } from '../shared/messages.js'
import type { Http2Settings } from './args.js'

/** The server process a variant runs against: the plugin over HTTP/1.1, or the same build over HTTP/2. */
export type Protocol = 'http1' | 'http2'

/** One row of a scenario: a protocol and the generator's job for it. */
export interface Variant {
  label: string
  protocol: Protocol
  job: (port: number, settings: Http2Settings) => Job
}

/** A scenario of `npm run bench`, run over HTTP/1.1 and HTTP/2 on the same server build. */
export interface Http2Scenario {
  letter: string
  title: string
  /** What the rate column counts. */
  unit: 'msgs/s' | 'handshakes/s'
  /** The first variant is HTTP/1.1, the base of every ratio. */
  variants: Variant[]
}

const KiB = 1024

/** Labels of the rows, also what the report's ratios name. */
export const HTTP1 = 'HTTP/1.1'
export const H2_EACH = 'HTTP/2, a session each'
export const H2_SHARED = 'HTTP/2, one session'

function echo (connections: number, size: number, text: boolean): Variant[] {
  const timing = (s: Http2Settings): { warmupMs: number, durationMs: number, tls: boolean } => ({ warmupMs: s.warmupMs, durationMs: s.durationMs, tls: s.tls })
  const h2 = (sessions: number) => (port: number, s: Http2Settings): Job => ({ type: 'h2-echo', port, connections, sessions, size, text, inFlight: 1, ...timing(s) })
  return [
    { label: HTTP1, protocol: 'http1', job: (port, s) => ({ type: 'echo', port, transport: 'ws', connections, size, text, inFlight: 1, deflate: false, ...timing(s) }) },
    { label: H2_EACH, protocol: 'http2', job: h2(connections) },
    { label: H2_SHARED, protocol: 'http2', job: h2(1) }
  ]
}

/** Scenarios (a), (c) and (h) of bench/README.md, each over both protocols. */
export const HTTP2_SCENARIOS: Http2Scenario[] = [
  { letter: 'a', title: '100 conns, 32 B text echo, 1 in flight', unit: 'msgs/s', variants: echo(100, 32, true) },
  { letter: 'c', title: '10 conns, 64 KiB binary echo, 1 in flight', unit: 'msgs/s', variants: echo(10, 64 * KiB, false) },
  {
    letter: 'h',
    title: 'handshakes/s: open, one 32 B echo, close (HTTP/1.1: a connection each; HTTP/2: a stream each on one session)',
    unit: 'handshakes/s',
    variants: [
      { label: HTTP1, protocol: 'http1', job: (port, s) => ({ type: 'handshake', port, transport: 'ws', concurrency: s.concurrency, size: 32, warmupMs: s.warmupMs, durationMs: s.durationMs, tls: s.tls }) },
      { label: H2_SHARED, protocol: 'http2', job: (port, s) => ({ type: 'h2-handshake', port, concurrency: s.concurrency, size: 32, warmupMs: s.warmupMs, durationMs: s.durationMs, tls: s.tls }) }
    ]
  }
]
