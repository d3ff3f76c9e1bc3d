import { performance } from 'node:perf_hooks'
import type { GeneratorEvent, HandshakeJob, JobResult } from '../shared/messages.js'
import { textPayload } from '../shared/payloads.js'
import { BenchClient, type ClientHooks } from './client.js'
import { TEXT, closeFrame, maskedFrame } from './frames.js'
import { Histogram } from './histogram.js'
import { windowResult } from './result.js'
import { measureWindow } from './window.js'

const MAX_FAILURES = 100

/**
 * `concurrency` independent loops of: connect, upgrade, one echo, closing handshake (the client
 * sends close 1000 and waits for the server to end TCP; on bare TCP the client ends and waits),
 * then start over. Latency is one whole cycle, from connect to the socket's close.
 */
export async function runHandshakes (job: HandshakeJob, emit: (event: GeneratorEvent) => void): Promise<JobResult> {
  const message = job.transport === 'ws' ? maskedFrame(TEXT, textPayload(job.size)) : textPayload(job.size)
  const close = closeFrame()
  const histogram = new Histogram()
  const startedAt = new Float64Array(job.concurrency)
  const live: BenchClient[] = []
  let running = true
  let recording = false
  let cycles = 0
  let failures = 0
  let lastError: Error | undefined
  const settings = { port: job.port, transport: job.transport, deflate: false, size: job.size, tls: job.tls }

  const hooks: ClientHooks = {
    opened: (client) => { client.socket.write(message) },
    messages: (client) => {
      if (job.transport === 'ws') client.socket.write(close)
      else client.socket.end()
    },
    closed: (client, error) => {
      // A cycle counts once the server has answered the echo and closed its side.
      const ok = error === undefined && client.open && (job.transport === 'tcp' || client.closeReceived)
      if (ok) {
        if (recording) {
          cycles++
          histogram.record((performance.now() - startedAt[client.slot]!) * 1000)
        }
      } else if (running) {
        failures++
        lastError = error ?? lastError
      }
      if (running && failures < MAX_FAILURES) begin(client.slot)
    }
  }
  const begin = (slot: number): void => {
    startedAt[slot] = performance.now()
    live[slot] = new BenchClient(slot, settings, hooks)
  }

  for (let slot = 0; slot < job.concurrency; slot++) begin(slot)
  const window = await measureWindow(emit, job, histogram, (on) => { recording = on })
  running = false
  for (const client of live) client.socket.destroy()
  return windowResult(window, histogram, cycles, job.size, failures > 0 ? `${failures} failed cycles; last: ${describe(lastError)}` : undefined)
}

function describe (error: Error | undefined): string {
  if (error === undefined) return 'the connection closed before the cycle completed'
  const code = (error as { code?: string }).code
  if (code === 'EMFILE') return 'EMFILE: out of file descriptors (raise ulimit -n)'
  if (code === 'EADDRNOTAVAIL') return 'EADDRNOTAVAIL: out of local ports (TIME_WAIT; see net.ipv4.tcp_tw_reuse)'
  return error.message
}
