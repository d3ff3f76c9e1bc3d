/** How a bench server behaves: echo every message, or broadcast one message to all on any message. */
export interface ServerSettings {
  mode: 'echo' | 'broadcast'
  /** Enable permessage-deflate (threshold 0) where the server supports it. */
  compress: boolean
  /** What a broadcast sends to every connection (as a text message on WebSocket servers). */
  broadcastPayload: Buffer
  /** Serve over cleartext HTTP/2 (h2c): WebSockets as RFC 8441 extended CONNECT streams (ours only). */
  http2?: boolean
  /** Serve over TLS with a self-signed certificate (ours only): HTTPS, or HTTP/2 over TLS with --http2. */
  tls?: boolean
}

/** A started bench server. */
export interface BenchServer {
  port: number
  /** How the server is built, shown in the report. */
  impl: string
  /** Connections currently open (upgraded, for WebSocket servers). */
  connections: () => number
  /** Stops listening and drops every connection; the bench's processes just exit, tests call it. */
  close?: () => void
}

/** Starts one kind of bench server listening on 127.0.0.1 with an ephemeral port. */
export type StartServer = (settings: ServerSettings) => Promise<BenchServer>

/** Swallows errors of peers that vanish (the load generator destroys its sockets). */
export function ignore (): void {}
