import type { GeneratorEvent, IdleJob, JobResult } from '../shared/messages.js'
import { jsonPayload } from '../shared/payloads.js'
import type { BenchClient, ClientHooks } from './client.js'
import { TEXT, deflateMessage, maskedFrame } from './frames.js'
import { openClients } from './open.js'
import { emptyResult } from './result.js'

const JSON_SIZE = 1024
const ECHO_TIMEOUT_MS = 30_000

/**
 * Opens N connections and holds them idle while the runner reads the server's RSS. With
 * `deflate`, every connection first does one compressed 1 KiB echo, so that the per-connection
 * zlib state a server allocates lazily exists when the RSS is read.
 */
export async function runIdle (job: IdleJob, emit: (event: GeneratorEvent) => void, released: () => Promise<void>): Promise<JobResult> {
  let echoed = 0
  let allEchoed = (): void => {}
  const hooks: ClientHooks = {
    opened: () => {},
    messages: () => { if (++echoed === job.connections) allEchoed() },
    closed: () => {}
  }
  const clients = await openClients(job.connections, { ...job, size: JSON_SIZE }, hooks)
  const extensions = clients[0]?.extensions ?? ''
  const destroy = (): void => { for (const client of clients) client.socket.destroy() }
  if (job.deflate) {
    if (!/permessage-deflate/i.test(extensions)) {
      destroy()
      return { ...emptyResult(), extensions, na: 'permessage-deflate not negotiated' }
    }
    try {
      await echoOnce(clients, () => new Promise((resolve) => { allEchoed = resolve }))
    } catch (err) {
      destroy()
      throw err
    }
  }
  emit({ event: 'holding', opened: clients.length })
  await released()
  destroy()
  return { ...emptyResult(), extensions, opened: clients.length }
}

async function echoOnce (clients: BenchClient[], allEchoed: () => Promise<void>): Promise<void> {
  const done = allEchoed()
  const frame = maskedFrame(TEXT, deflateMessage(jsonPayload(JSON_SIZE)), true)
  for (const client of clients) client.socket.write(frame)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the compressed echoes did not all come back within ${ECHO_TIMEOUT_MS / 1000} s`)), ECHO_TIMEOUT_MS)
  })
  try {
    await Promise.race([done, timeout])
  } finally {
    clearTimeout(timer)
  }
}
