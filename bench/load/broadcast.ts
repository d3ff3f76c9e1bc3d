import { performance } from 'node:perf_hooks'
import type { BroadcastJob, GeneratorEvent, JobResult } from '../shared/messages.js'
import type { ClientHooks } from './client.js'
import { TEXT, maskedFrame } from './frames.js'
import { Histogram } from './histogram.js'
import { openClients } from './open.js'
import { emptyResult } from './result.js'
import { Window } from './window.js'

const REPEAT_TIMEOUT_MS = 30_000

/**
 * Holds N connections open until the runner has seen all of them on the server, then, `repeats`
 * times, has the first client send one message, which makes the server write the broadcast to
 * every connection, and waits until every client has received it. Per-client latency is the time
 * from the trigger to that client's message.
 */
export async function runBroadcast (job: BroadcastJob, emit: (event: GeneratorEvent) => void, released: () => Promise<void>): Promise<JobResult> {
  const histogram = new Histogram()
  const round = new Int32Array(job.connections)
  let current = 0
  let received = 0
  let startedAt = 0
  let lost = 0
  let allReceived = (): void => {}
  const hooks: ClientHooks = {
    opened: () => {},
    messages: (client) => {
      if (round[client.slot] === current) return
      round[client.slot] = current
      histogram.record((performance.now() - startedAt) * 1000)
      if (++received === job.connections) allReceived()
    },
    closed: (client) => { if (client.open && current > 0) lost++ }
  }
  const clients = await openClients(job.connections, { ...job, deflate: false }, hooks)
  emit({ event: 'holding', opened: clients.length })
  await released()
  const trigger = job.transport === 'ws' ? maskedFrame(TEXT, Buffer.from('go')) : Buffer.from('go')
  const timeToAllMs: number[] = []
  const window = new Window(emit)
  window.start()
  let error: string | undefined
  for (let r = 1; r <= job.repeats && error === undefined; r++) {
    const done = new Promise<boolean>((resolve) => {
      allReceived = () => resolve(true)
      setTimeout(() => resolve(false), REPEAT_TIMEOUT_MS).unref()
    })
    received = 0
    current = r
    startedAt = performance.now()
    clients[0]!.socket.write(trigger)
    if (await done) timeToAllMs.push(performance.now() - startedAt)
    else error = `only ${received} of ${job.connections} clients got broadcast ${r} within ${REPEAT_TIMEOUT_MS / 1000} s`
  }
  window.end()
  for (const client of clients) client.socket.destroy()
  if (lost > 0) error ??= `${lost} connections closed by the server during the broadcast`
  const messages = timeToAllMs.length * job.connections
  return {
    ...emptyResult(),
    messages,
    seconds: timeToAllMs.reduce((a, b) => a + b, 0) / 1000,
    payloadBytes: messages * job.size,
    p50Us: histogram.percentile(0.5),
    p99Us: histogram.percentile(0.99),
    genCpu: window.cpuShare,
    timeToAllMs,
    opened: clients.length,
    error
  }
}
