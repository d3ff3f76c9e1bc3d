import { BenchClient, type ClientHooks, type ClientSettings } from './client.js'

const CONCURRENT_CONNECTS = 200
const OPEN_TIMEOUT_MS = 60_000

/**
 * Opens `count` clients, at most 200 connecting at a time, and resolves once all are open
 * (upgraded). Rejects with a readable message on the first failure, e.g. EMFILE.
 */
export function openClients (count: number, settings: ClientSettings, hooks: ClientHooks): Promise<BenchClient[]> {
  return new Promise((resolve, reject) => {
    const clients: BenchClient[] = []
    let opened = 0
    let failed = false
    const fail = (error: Error): void => {
      if (failed) return
      failed = true
      clearTimeout(timer)
      for (const client of clients) client.socket.destroy()
      reject(error)
    }
    const timer = setTimeout(() => fail(new Error(`only ${opened} of ${count} connections opened within ${OPEN_TIMEOUT_MS / 1000} s`)), OPEN_TIMEOUT_MS)
    const setupHooks: ClientHooks = {
      opened: (client) => {
        hooks.opened(client)
        opened++
        if (opened === count) {
          clearTimeout(timer)
          resolve(clients)
        } else if (clients.length < count) {
          start()
        }
      },
      messages: (client, n) => hooks.messages(client, n),
      closed: (client, error) => {
        if (!client.open || opened < count) fail(explain(error, opened, count))
        hooks.closed(client, error)
      }
    }
    const start = (): void => {
      if (!failed) clients.push(new BenchClient(clients.length, settings, setupHooks))
    }
    for (let i = 0; i < Math.min(count, CONCURRENT_CONNECTS); i++) start()
  })
}

/** Turns a connect failure into advice a reader can act on. */
export function explain (error: Error | undefined, opened: number, wanted: number): Error {
  const code = (error as { code?: string } | undefined)?.code
  if (code === 'EMFILE' || code === 'ENFILE') {
    return new Error(`${code}: the load generator ran out of file descriptors after ${opened} of ${wanted} connections; raise the limit (ulimit -n ${wanted + 1024}) and rerun`)
  }
  if (code === 'EADDRNOTAVAIL') {
    return new Error(`EADDRNOTAVAIL after ${opened} of ${wanted} connections: no free local ports (see net.ipv4.ip_local_port_range)`)
  }
  return new Error(`connection ${opened + 1} of ${wanted} failed: ${error?.message ?? 'closed by the server (out of file descriptors there?)'}`)
}
