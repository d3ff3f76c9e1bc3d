/** Which server implementation a server process runs; wsconn-bare is ours as a bare Upgrader on node:http. */
export type ServerKind = 'wsconn' | 'wsconn-bare' | 'fastify-websocket' | 'ws' | 'tcp'

/** How the load generator talks to a server: WebSocket frames, or the same payloads on bare TCP. */
export type Transport = 'ws' | 'tcp'

/** Echo load: `inFlight` messages outstanding per connection, a new one sent per echo counted. */
export interface EchoJob {
  type: 'echo'
  port: number
  transport: Transport
  connections: number
  size: number
  text: boolean
  inFlight: number
  /** Offer permessage-deflate and send the JSON payload compressed. */
  deflate: boolean
  warmupMs: number
  durationMs: number
  /** Over TLS (bench:http2 --tls); the server's certificate is self-signed and not checked. */
  tls?: boolean
}

/** Broadcast: N connections, one client triggers, the server sends one message to all of them. */
export interface BroadcastJob {
  type: 'broadcast'
  port: number
  transport: Transport
  connections: number
  size: number
  repeats: number
}

/** Idle connections held open while the runner measures the server's RSS. */
export interface IdleJob {
  type: 'idle'
  port: number
  transport: Transport
  connections: number
  /** Offer permessage-deflate and do one compressed echo per connection so zlib state exists. */
  deflate: boolean
}

/** Handshake churn: `concurrency` loops of connect, one echo, close. */
export interface HandshakeJob {
  type: 'handshake'
  port: number
  transport: Transport
  concurrency: number
  size: number
  warmupMs: number
  durationMs: number
  /** Over TLS (bench:http2 --tls); the server's certificate is self-signed and not checked. */
  tls?: boolean
}

/**
 * Fan-out across two server processes (bench/redis.ts): `connections` subscribers on each port, a
 * publisher on the first, `inFlight` publishes outstanding; a publish is done when every
 * subscriber of both servers has it.
 */
export interface FanoutJob {
  type: 'fanout'
  ports: [number, number]
  /** ws: our plugin (plain messages); socketio: Engine.IO v4 packets over WebSocket. */
  protocol: 'ws' | 'socketio'
  connections: number
  size: number
  inFlight: number
  warmupMs: number
  durationMs: number
}

/**
 * Echo over HTTP/2 (bench/http2.ts): `connections` WebSockets, each an RFC 8441 extended
 * CONNECT stream, spread over `sessions` HTTP/2 sessions (1: all on one; `connections`: one each).
 */
export interface H2EchoJob {
  type: 'h2-echo'
  port: number
  connections: number
  sessions: number
  size: number
  text: boolean
  inFlight: number
  warmupMs: number
  durationMs: number
  /** Over TLS (bench:http2 --tls); the server's certificate is self-signed and not checked. */
  tls?: boolean
}

/** Handshake churn over ONE HTTP/2 session: `concurrency` loops of extended CONNECT, one echo, close. */
export interface H2HandshakeJob {
  type: 'h2-handshake'
  port: number
  concurrency: number
  size: number
  warmupMs: number
  durationMs: number
  /** Over TLS (bench:http2 --tls); the server's certificate is self-signed and not checked. */
  tls?: boolean
}

/** Any job the load generator runs. */
export type Job = EchoJob | BroadcastJob | IdleJob | HandshakeJob | FanoutJob | H2EchoJob | H2HandshakeJob

/** What the load generator measured for one job; `na` or `error` replace the numbers. */
export interface JobResult {
  messages: number
  seconds: number
  payloadBytes: number
  p50Us: number
  p99Us: number
  /** The generator's CPU time over the wall time of the measured window (1 = one core busy). */
  genCpu: number
  /** The Sec-WebSocket-Extensions the server answered ('' for none). */
  extensions: string
  /** Broadcast only: milliseconds until every client had the message, one per repeat. */
  timeToAllMs: number[]
  /** Connections that were open when the job held them (idle and broadcast jobs). */
  opened: number
  na?: string
  error?: string
}

/** Messages from the runner to the load generator. */
export type GeneratorCommand = { cmd: 'job', job: Job } | { cmd: 'release' }

/** Messages from the load generator to the runner. */
export type GeneratorEvent =
  | { event: 'window-start' }
  | { event: 'window-end' }
  | { event: 'holding', opened: number }
  | { event: 'result', result: JobResult }

/** A question from the runner to a server process; answered with `{ id, value }`. */
export interface ServerQuery {
  id: number
  query: 'cpu' | 'rss' | 'connections' | 'heap-snapshot'
  /** heap-snapshot only: where to write it. */
  file?: string
}

/** A server process's answer to a ServerQuery. */
export interface ServerAnswer {
  id: number
  /** cpu: microseconds of CPU (user + system); rss: bytes; connections: a count. */
  value: number
  /** cpu only: the server's monotonic clock in milliseconds, so the runner can take a wall-time delta. */
  wallMs?: number
  /** rss only: bytes of V8 heap in use, to tell JS objects from native memory. */
  heapUsed?: number
}

/** Sent once by a server process when it listens. */
export interface ServerReady {
  event: 'ready'
  port: number
  /** How the server is built, for the report (e.g. which path "ours" took). */
  impl: string
}
