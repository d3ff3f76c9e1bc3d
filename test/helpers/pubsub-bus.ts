// What the RedisBus tests share: a logger that records, a delivery that records, and polling for
// state that only Redis (asked through redis-cli) can confirm.
import { setTimeout as sleep } from 'node:timers/promises'
import type { BusDelivery, BusLogger, BusMessage } from '../../lib/pubsub/bus.js'
import { RedisBus, type RedisBusOptions } from '../../lib/pubsub/redis-bus.js'
import type { RedisServer } from './redis-server.js'

/** One recorded log call. */
export interface LogEntry { level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string }

/** A BusLogger that keeps every call. */
export function recordingLogger (): BusLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = []
  const record = (level: LogEntry['level']) => (obj: object, msg: string): void => { entries.push({ level, obj: obj as Record<string, unknown>, msg }) }
  return { entries, info: record('info'), warn: record('warn'), error: record('error') }
}

/** A BusDelivery that keeps every message, with a way to wait for the next ones. */
export function recordingDelivery (): { deliver: (topic: string, message: BusMessage) => void, received: Array<{ topic: string, message: BusMessage }>, count: (n: number) => Promise<void> } {
  const received: Array<{ topic: string, message: BusMessage }> = []
  return {
    received,
    deliver: (topic, message) => { received.push({ topic, message }) },
    count: (n) => waitFor(() => received.length >= n, `${n} messages (have ${received.length})`)
  }
}

/** Polls `check` every 10 ms until it holds; fails after `ms` (10 s) naming `what`. */
export async function waitFor (check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** The channels Redis has subscribers for, plain or sharded, as an independent client sees them. */
export async function channelsInRedis (redis: RedisServer, sharded: boolean): Promise<string[]> {
  return (await redis.cli('PUBSUB', sharded ? 'SHARDCHANNELS' : 'CHANNELS')).sort()
}

/** Waits until Redis's channel list equals `expected`. */
export async function waitForChannels (redis: RedisServer, sharded: boolean, expected: string[]): Promise<void> {
  let last: string[] = []
  await waitFor(async () => {
    last = await channelsInRedis(redis, sharded)
    return JSON.stringify(last) === JSON.stringify([...expected].sort())
  }, `channels ${JSON.stringify(expected)} (Redis has ${JSON.stringify(last)})`)
}

interface Teardown { teardown (fn: () => unknown): void }

/** A started bus that `t` closes at its end. */
export async function startBus (t: Teardown, options: RedisBusOptions, deliver: BusDelivery = () => {}, log = recordingLogger()): Promise<RedisBus> {
  const bus = new RedisBus(options, deliver, log)
  t.teardown(() => bus.close())
  await bus.ready()
  return bus
}
