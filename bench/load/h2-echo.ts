import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2'
import type { GeneratorEvent, H2EchoJob, JobResult } from '../shared/messages.js'
import { binaryPayload, textPayload } from '../shared/payloads.js'
import { FrameCounter } from './counters.js'
import { BINARY, TEXT, maskedFrame, repeat } from './frames.js'
import { accepted, openSession, openWebSocket } from './h2-session.js'
import { Histogram } from './histogram.js'
import { InFlight } from './in-flight.js'
import { windowResult } from './result.js'
import { measureWindow } from './window.js'

/**
 * The echo load of echo.ts over HTTP/2: every WebSocket is an extended CONNECT stream, spread
 * round-robin over `sessions` sessions, with `inFlight` pre-masked messages outstanding on each;
 * each time a chunk completes k echoes, k frames go out in one write. Echoes are counted from
 * frame headers; latency is matched in order through a per-stream ring of send times, as over TCP.
 * Unlike `net`'s onread, Node's http2 streams hand over a new Buffer per DATA frame.
 */
export async function runH2Echo (job: H2EchoJob, emit: (event: GeneratorEvent) => void): Promise<JobResult> {
  const frame = maskedFrame(job.text ? TEXT : BINARY, job.text ? textPayload(job.size) : binaryPayload(job.size))
  const depth = job.inFlight
  const batches = Array.from({ length: depth + 1 }, (_, k) => repeat(frame, k))
  const histogram = new Histogram()
  const inFlight = new InFlight(job.connections, depth, histogram)
  let sending = true
  let lost = 0

  const sessions: ClientHttp2Session[] = []
  const streams: ClientHttp2Stream[] = []
  const send = (slot: number, count: number): void => {
    inFlight.sent(slot, count)
    streams[slot]!.write(batches[count]!)
  }
  const received = (slot: number, count: number): void => {
    const again = inFlight.echoed(slot, count)
    if (sending) send(slot, again)
  }

  try {
    for (let i = 0; i < job.sessions; i++) sessions.push(await openSession(job.port, job.tls))
    for (let slot = 0; slot < job.connections; slot++) {
      const stream = openWebSocket(sessions[slot % sessions.length]!, job.port, job.tls)
      const counter = new FrameCounter()
      stream.on('data', (chunk: Buffer) => {
        const count = counter.push(chunk, 0, chunk.length)
        if (count > 0) received(slot, count)
      })
      stream.on('close', () => { if (sending) lost++ })
      streams.push(stream)
    }
    await Promise.all(streams.map(accepted))
  } catch (err) {
    sending = false
    for (const session of sessions) session.destroy()
    throw err
  }
  // Every slot's ring starts full: the first batch's send times fill it from position 0.
  for (let slot = 0; slot < job.connections; slot++) send(slot, depth)
  const window = await measureWindow(emit, job, histogram, (on) => { inFlight.recording = on })
  sending = false
  for (const session of sessions) session.destroy()
  return windowResult(window, histogram, inFlight.messages, job.size, lost > 0 ? `${lost} streams closed by the server during the run` : undefined)
}
