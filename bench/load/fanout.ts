import { performance } from 'node:perf_hooks'
import type { FanoutJob, GeneratorEvent, JobResult } from '../shared/messages.js'
import { PUBLISHER_PATH, SOCKET_IO_PATH, SOCKET_IO_PUBLISHER_PATH } from '../redis/protocol.js'
import type { BenchClient, ClientHooks, ClientSettings } from './client.js'
import { CONNECT_FRAME, PONG_FRAME, Packet, classify, publishFrame, sequenceOf } from './fanout-wire.js'
import { HeadReader } from './heads.js'
import { Histogram } from './histogram.js'
import { openClients } from './open.js'
import { emptyResult } from './result.js'
import { measureWindow, sleep } from './window.js'

/** Publishes tracked at once; a power of two above any sensible in-flight count. */
const RING = 1024
const PROBE_ATTEMPTS = 20
const PROBE_WAIT_MS = 1000
const CONNECT_TIMEOUT_MS = 60_000
const DRAIN_TIMEOUT_MS = 10_000

/**
 * Subscribers on two servers that share a Redis, and one publisher on the first. Each publish
 * carries a sequence number; the job keeps `inFlight` publishes outstanding (the next goes out
 * when a publish has reached every subscriber of both servers) and measures deliveries per second
 * and the time from a publish's write to each subscriber's copy.
 */
export async function runFanout (job: FanoutJob, emit: (event: GeneratorEvent) => void, released: () => Promise<void>): Promise<JobResult> {
  const total = 2 * job.connections
  const socketIo = job.protocol === 'socketio'
  const histogram = new Histogram()
  const sentAt = new Float64Array(RING)
  const slotSeq = new Float64Array(RING).fill(-1)
  const got = new Int32Array(RING)
  // Per server, the copies of the publish the probe waits for (to say which side is missing).
  const probeGot = [0, 0]
  let probeSeq = -1
  let nextSeq = 0
  let outstanding = 0
  let sending = false
  let recording = false
  let deliveries = 0
  let connected = 0
  let lost = 0
  let finishing = false
  let onProgress = (): void => {}
  let publisher: BenchClient | undefined

  const send = (): void => {
    const seq = nextSeq++
    const slot = seq & (RING - 1)
    slotSeq[slot] = seq
    got[slot] = 0
    outstanding++
    sentAt[slot] = performance.now()
    publisher!.socket.write(publishFrame(job.protocol, seq, job.size))
  }
  const delivered = (server: number, seq: number): void => {
    if (seq === probeSeq) probeGot[server]!++
    const slot = seq & (RING - 1)
    if (slotSeq[slot] !== seq) return // an abandoned probe
    if (recording) {
      histogram.record((performance.now() - sentAt[slot]!) * 1000)
      deliveries++
    }
    if (++got[slot] < total) return
    slotSeq[slot] = -1
    outstanding--
    if (sending) send()
    onProgress()
  }
  const reader = (server: number) => (client: BenchClient) => new HeadReader((head, length) => {
    switch (classify(job.protocol, head, length)) {
      case Packet.Message: {
        const seq = sequenceOf(job.protocol, head, length)
        if (seq >= 0) delivered(server, seq)
        return
      }
      case Packet.Open: client.socket.write(CONNECT_FRAME); return
      case Packet.Connected: connected++; onProgress(); return
      case Packet.Ping: client.socket.write(PONG_FRAME)
    }
  })
  const hooks: ClientHooks = {
    opened: () => {},
    messages: () => {},
    closed: (client) => { if (client.open && !finishing) lost++ }
  }
  const settings = (port: number, server: number, path: string): ClientSettings =>
    ({ port, transport: 'ws', deflate: false, size: job.size, path, reader: reader(server) })

  const clients: BenchClient[] = []
  try {
    for (const [server, port] of job.ports.entries()) {
      clients.push(...await openClients(job.connections, settings(port, server, socketIo ? SOCKET_IO_PATH : '/'), hooks))
    }
    publisher = (await openClients(1, settings(job.ports[0], 0, socketIo ? SOCKET_IO_PUBLISHER_PATH : PUBLISHER_PATH), hooks))[0]!
    clients.push(publisher)
    if (socketIo && !await until(() => connected === total + 1, CONNECT_TIMEOUT_MS, (f) => { onProgress = f })) {
      throw new Error(`only ${connected} of ${total + 1} Socket.IO clients got the namespace's CONNECT within ${CONNECT_TIMEOUT_MS / 1000} s`)
    }
    emit({ event: 'holding', opened: total })
    await released()

    // Redis subscriptions are made asynchronously: probe until one publish reaches everyone.
    let reached = false
    for (let attempt = 0; attempt < PROBE_ATTEMPTS && !reached; attempt++) {
      probeGot[0] = probeGot[1] = 0
      probeSeq = nextSeq
      send()
      reached = await until(() => outstanding === 0, PROBE_WAIT_MS, (f) => { onProgress = f })
      if (!reached) {
        slotSeq[probeSeq & (RING - 1)] = -1
        outstanding = 0
      }
    }
    if (!reached) {
      throw new Error(`no publish reached every subscriber in ${PROBE_ATTEMPTS} tries: the last got ${probeGot[0]} of ${job.connections} in the publishing process and ${probeGot[1]} of ${job.connections} in the other`)
    }

    sending = true
    for (let i = 0; i < job.inFlight; i++) send()
    const window = await measureWindow(emit, job, histogram, (on) => { recording = on })
    sending = false
    if (!await until(() => outstanding === 0, DRAIN_TIMEOUT_MS, (f) => { onProgress = f })) {
      throw new Error(`${outstanding} publishes did not reach every subscriber within ${DRAIN_TIMEOUT_MS / 1000} s after the window`)
    }
    if (lost > 0) throw new Error(`${lost} connections were closed by a server during the run`)
    return {
      ...emptyResult(),
      messages: deliveries,
      seconds: window.seconds,
      payloadBytes: deliveries * job.size,
      p50Us: histogram.percentile(0.5),
      p99Us: histogram.percentile(0.99),
      genCpu: window.cpuShare,
      opened: total
    }
  } finally {
    finishing = true
    for (const client of clients) client.socket.destroy()
    await sleep(0)
  }
}

/**
 * Resolves true as soon as `done()` holds (checked whenever the job calls the progress hook that
 * `setHook` installs), false after `timeoutMs`.
 */
function until (done: () => boolean, timeoutMs: number, setHook: (hook: () => void) => void): Promise<boolean> {
  if (done()) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(false), timeoutMs)
    const finish = (result: boolean): void => {
      clearTimeout(timer)
      setHook(() => {})
      resolve(result)
    }
    setHook(() => { if (done()) finish(true) })
  })
}
