import type { EchoJob, GeneratorEvent, JobResult } from '../shared/messages.js'
import { binaryPayload, jsonPayload, textPayload } from '../shared/payloads.js'
import type { BenchClient, ClientHooks } from './client.js'
import { BINARY, TEXT, deflateMessage, maskedFrame, repeat } from './frames.js'
import { Histogram } from './histogram.js'
import { InFlight } from './in-flight.js'
import { openClients } from './open.js'
import { measureWindow } from './window.js'
import { emptyResult, windowResult } from './result.js'

/**
 * Keeps `inFlight` messages outstanding on every connection: each time a read completes k echoes,
 * k pre-built frames go out in one write. Latency is the time from a message's write to its echo,
 * matched in order through a per-connection ring of send times.
 */
export async function runEcho (job: EchoJob, emit: (event: GeneratorEvent) => void): Promise<JobResult> {
  const batches = buildBatches(job)
  const histogram = new Histogram()
  const inFlight = new InFlight(job.connections, job.inFlight, histogram)
  let sending = true
  let lost = 0

  const send = (client: BenchClient, count: number): void => {
    inFlight.sent(client.slot, count)
    client.socket.write(batches[count]!)
  }
  const hooks: ClientHooks = {
    opened: () => {},
    messages: (client, count) => {
      const again = inFlight.echoed(client.slot, count)
      if (sending) send(client, again)
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
  for (const client of clients) send(client, job.inFlight)
  const window = await measureWindow(emit, job, histogram, (on) => { inFlight.recording = on })
  sending = false
  for (const client of clients) client.socket.destroy()
  return { ...windowResult(window, histogram, inFlight.messages, job.size, lost > 0 ? `${lost} connections closed by the server during the run` : undefined), extensions }
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
