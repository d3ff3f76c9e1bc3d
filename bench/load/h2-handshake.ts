import { performance } from 'node:perf_hooks'
import { constants, type ClientHttp2Session } from 'node:http2'
import type { GeneratorEvent, H2HandshakeJob, JobResult } from '../shared/messages.js'
import { textPayload } from '../shared/payloads.js'
import { FrameCounter } from './counters.js'
import { TEXT, closeFrame, maskedFrame } from './frames.js'
import { openSession, openWebSocket } from './h2-session.js'
import { Histogram } from './histogram.js'
import { windowResult } from './result.js'
import { measureWindow } from './window.js'

const MAX_FAILURES = 100

/**
 * handshake.ts over ONE HTTP/2 session: `concurrency` independent loops of extended CONNECT (200),
 * one echo, closing handshake (the client sends close 1000; the server answers and ends its
 * stream; the client ends its side), then start over, with no TCP connection set up per WebSocket.
 * A cycle counts once the stream closed without a reset after the server's close frame; latency
 * is one whole cycle, from the CONNECT to the stream's close.
 */
export async function runH2Handshakes (job: H2HandshakeJob, emit: (event: GeneratorEvent) => void): Promise<JobResult> {
  const message = maskedFrame(TEXT, textPayload(job.size))
  const close = closeFrame()
  const histogram = new Histogram()
  const session = await openSession(job.port, job.tls)
  let running = true
  let recording = false
  let cycles = 0
  let failures = 0
  let lastError = ''

  const begin = (session: ClientHttp2Session): void => {
    const startedAt = performance.now()
    const stream = openWebSocket(session, job.port, job.tls)
    const counter = new FrameCounter()
    let status = 0
    let closing = false
    stream.on('response', (headers) => {
      status = Number(headers[':status'])
      if (status === 200) stream.write(message)
      else stream.close(constants.NGHTTP2_CANCEL)
    })
    stream.on('data', (chunk: Buffer) => {
      if (counter.push(chunk, 0, chunk.length) > 0 && !closing) {
        closing = true
        stream.write(close)
      }
    })
    // The server ends its stream after its close frame; ending ours completes the closing handshake.
    stream.on('end', () => { stream.end() })
    stream.on('close', () => {
      const ok = status === 200 && counter.closeCode === 1000 && stream.rstCode === constants.NGHTTP2_NO_ERROR
      if (ok) {
        if (recording) {
          cycles++
          histogram.record((performance.now() - startedAt) * 1000)
        }
      } else if (running) {
        failures++
        lastError = status !== 200 ? `status ${status}, RST_STREAM ${stream.rstCode}` : `close code ${String(counter.closeCode)}, RST_STREAM ${stream.rstCode}`
      }
      if (running && failures < MAX_FAILURES && !session.destroyed) begin(session)
    })
  }

  for (let i = 0; i < job.concurrency; i++) begin(session)
  const window = await measureWindow(emit, job, histogram, (on) => { recording = on })
  running = false
  const sessionLost = session.destroyed || session.closed
  session.destroy()
  const errors = [
    ...(failures > 0 ? [`${failures} failed cycles; last: ${lastError}`] : []),
    ...(sessionLost ? ['the HTTP/2 session ended during the run'] : [])
  ]
  return windowResult(window, histogram, cycles, job.size, errors.length > 0 ? errors.join('; ') : undefined)
}
