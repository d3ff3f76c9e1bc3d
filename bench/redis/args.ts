import type { FanoutKind } from './protocol.js'

/** Everything `npm run bench:redis` can be told on the command line. */
export interface RedisSettings {
  quick: boolean
  servers: FanoutKind[]
  /** Subscribers in each of the two server processes. */
  connections: number
  rounds: number
  warmupMs: number
  durationMs: number
  /** Publishes outstanding at once (a publish is done when every subscriber of both processes has it). */
  inFlight: number
  /** Bytes of each published text message. */
  size: number
  pin: boolean
  /** CPU-profile both server processes over each measured window. */
  profile: boolean
  fromSource: boolean
  write: boolean
  /** The command line, for the report. */
  command: string
}

/** Order in which the implementations alternate in every round. */
export const FANOUT_ORDER: FanoutKind[] = ['ours', 'socketio']

export const REDIS_USAGE = `usage: npm run bench:redis -- [options]
  --quick               smoke run: 1 round, 500 subscribers per process, short windows; no RESULTS.md unless --write
  --connections=N       subscribers in each of the two server processes (default 5000)
  --servers=ours,socketio  implementations to run (default both, in that order)
  --rounds=N            rounds of alternating implementations (default 5)
  --duration=MS         measured window per run (default 5000)
  --warmup=MS           unmeasured load before it (default 1000)
  --in-flight=N         publishes outstanding at once (default 4)
  --size=BYTES          bytes per published text message (default 1024)
  --no-pin              do not pin servers and Redis to CPU 0 and the load generator to CPU 1
  --profile             CPU-profile both server processes over each measured window (bench/results/profiles/redis-*)
                        and print the top self-time functions
  --from-source         run lib/ through tsx instead of compiling it with tsc first
  --write / --no-write  write the Redis section of bench/RESULTS.md (default: yes, except with --quick)`

const OPTIONS = ['quick', 'connections', 'servers', 'rounds', 'duration', 'warmup', 'in-flight', 'size', 'no-pin', 'profile', 'from-source', 'write', 'no-write', 'help']

/** Parses argv; throws an Error with a message meant for the user on bad input. */
export function parseRedisArgs (argv: string[]): RedisSettings {
  const options = new Map<string, string>()
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg)
    if (match === null) throw new Error(`unknown argument ${arg}\n${REDIS_USAGE}`)
    if (!OPTIONS.includes(match[1]!)) throw new Error(`unknown option --${match[1]!}\n${REDIS_USAGE}`)
    options.set(match[1]!, match[2] ?? 'true')
  }
  if (options.has('help')) throw new Error(REDIS_USAGE)
  const quick = options.has('quick')
  const servers = (options.get('servers') ?? FANOUT_ORDER.join(',')).split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const s of servers) if (!(FANOUT_ORDER as string[]).includes(s)) throw new Error(`--servers: unknown ${JSON.stringify(s)} (allowed: ${FANOUT_ORDER.join(', ')})`)
  const inFlight = integer(options.get('in-flight'), 4, 'in-flight')
  if (inFlight > 512) throw new Error('--in-flight must be at most 512')
  const size = integer(options.get('size'), 1024, 'size')
  if (size < 10) throw new Error('--size must be at least 10 (the sequence number)')
  return {
    quick,
    servers: FANOUT_ORDER.filter((k) => servers.includes(k)),
    connections: integer(options.get('connections'), quick ? 500 : 5000, 'connections'),
    rounds: integer(options.get('rounds'), quick ? 1 : 5, 'rounds'),
    warmupMs: integer(options.get('warmup'), quick ? 300 : 1000, 'warmup'),
    durationMs: integer(options.get('duration'), quick ? 1000 : 5000, 'duration'),
    inFlight,
    size,
    pin: !options.has('no-pin'),
    profile: options.has('profile'),
    fromSource: options.has('from-source'),
    write: options.has('no-write') ? false : options.has('write') || !quick,
    command: ['npm run bench:redis', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ')
  }
}

function integer (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${value}`)
  return n
}
