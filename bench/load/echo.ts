import { performance } from 'node:perf_hooks'
import type { EchoJob, GeneratorEvent, JobResult } from '../shared/messages.js'
import { binaryPayload, jsonPayload, textPayload } from '../shared/payloads.js'
import type { BenchClient, ClientHooks } from './client.js'
import { BINARY, TEXT, deflateMessage, maskedFrame, repeat } from './frames.js'
import { Histogram } from './histogram.js'
import { openClients } from './open.js'
import { measureWindow } from './window.js'
import { emptyResult } from './result.js'

/**
 * Keeps `inFlight` messages outstanding on every connection: each time a read completes k echoes,
 * k pre-built frames go out in one write. Latency is the time from a message's write to its echo,
 * matched in order through a per-connection ring of send times.
 */
export async function runEcho (job: EchoJob, emit: (event: GeneratorEvent) => void): Promise<JobResult> {
  const batches = buildBatches(job)
  const depth = job.inFlight
  const sentAt = new Float64Array(job.connections * depth)
  const head = new Int32Array(job.connections)
  const histogram = new Histogram()
  let sending = true
  let recording = false
  let messages = 0
  let lost = 0

  const send = (client: BenchClient, count: number): void => {
    const now = performance.now()
    const base = client.slot * depth
    for (let i = 0; i < count; i++) sentAt[base + ((head[client.slot]! + depth - count + i) % depth)] = now
    client.socket.write(batches[count]!)
  }
  const hooks: ClientHooks = {
    opened: () => {},
    messages: (client, count) => {
      const now = performance.now()
      const slot = client.slot
      const base = slot * depth
      let h = head[slot]!
      for (let i = 0; i < count; i++) {
        if (recording) histogram.record((now - sentAt[base + h]!) * 1000)
        h = (h + 1) % depth
      }
      head[slot] = h
      if (recording) messages += count
      if (sending) send(client, Math.min(count, depth))
    },
    closed: (client) => { if (sending && client.open) lost++ }
  }

  const clients = await openClients(job.connections, { ...job }, hooks)
  const extensions = clients[0]?.extensions ?? ''
  if (job.deflate && job.transport === 'ws' && !/permessage-deflate/i.test(extensions)) {
    sending = false
    for (const client of clients) client.socket.destroy()
    return { ...emptyResult(), extensions, na: 'permessage-deflate not negotiated' }
  }
  // Every slot's ring starts full: the first batch's send times fill it from position 0.
  for (const client of clients) send(client, depth)
  const window = await measureWindow(emit, job, histogram, (on) => { recording = on })
  sending = false
  for (const client of clients) client.socket.destroy()
  return {
    ...emptyResult(),
    messages,
    seconds: window.seconds,
    payloadBytes: messages * job.size,
    p50Us: histogram.percentile(0.5),
    p99Us: histogram.percentile(0.99),
    genCpu: window.cpuShare,
    extensions,
    error: lost > 0 ? `${lost} connections closed by the server during the run` : undefined
  }
}

/** batches[k] holds k ready-to-write messages (frames for WebSocket, bare payloads for TCP). */
function buildBatches (job: EchoJob): Buffer[] {
  const payload = job.deflate ? jsonPayload(job.size) : job.text ? textPayload(job.size) : binaryPayload(job.size)
  let message = payload
  if (job.transport === 'ws') {
    message = job.deflate
      ? maskedFrame(TEXT, deflateMessage(payload), true)
      : maskedFrame(job.text ? TEXT : BINARY, payload)
  }
  return Array.from({ length: job.inFlight + 1 }, (_, k) => repeat(message, k))
}
