import type { ServerKind } from '../shared/messages.js'
import type { OursVia } from '../servers/wsconn.js'
import type { GeneratorChoice } from './generators.js'

/** Everything a bench run can be told on the command line. */
export interface Settings {
  quick: boolean
  /** Scenario letters to run, a-h. */
  scenarios: string[]
  servers: ServerKind[]
  rounds: number
  warmupMs: number
  durationMs: number
  /** Message size of the echo scenarios (a)-(e) instead of each one's own; undefined: their own. */
  messageSize: number | undefined
  /** Connections of the broadcast (f) and idle-RSS (g) scenarios. */
  manyConnections: number
  broadcastRepeats: number
  handshakeConcurrency: number
  /** fixed: servers get fixed glibc malloc thresholds; default: glibc's own; both: fixed, then one round with defaults. */
  malloc: 'fixed' | 'default' | 'both'
  pin: boolean
  /** Which load generator runs the jobs (auto: Go when it can be built). */
  generator: GeneratorChoice
  profile: boolean
  ours: OursVia
  /** Run lib/ from its TypeScript source through tsx instead of a tsc build. */
  fromSource: boolean
  write: boolean
  /** The command line, for the report. */
  command: string
}

/** Order in which servers alternate in every round: ours (route, then bare Upgrader), @fastify/websocket, ws, raw TCP. */
export const SERVER_ORDER: ServerKind[] = ['wsconn', 'wsconn-bare', 'fastify-websocket', 'ws', 'tcp']
const LETTERS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']

export const USAGE = `usage: node --import tsx bench/run.ts [options]
  --quick               smoke run: 1 round, short windows, 1,000 connections for (f)/(g); no RESULTS.md unless --write
  --scenario=a,b        scenarios to run (a-h; default all)
  --servers=wsconn,ws   servers to run (wsconn, wsconn-bare, fastify-websocket, ws, tcp; default all, in that order);
                        wsconn is ours through a plugin route, wsconn-bare the bare Upgrader on node:http 'upgrade'
  --rounds=N            rounds of alternating servers (default 3)
  --duration=MS         measured window per run (default 3000)
  --warmup=MS           unmeasured warm-up before it (default 1000)
  --connections=N       connections for (f) and (g) (default 10000)
  --size=BYTES          message size of the echo scenarios (a)-(e) instead of their own, to see how a rate depends on it
                        (raw TCP's does, sharply, around 64 KiB); no RESULTS.md unless --write
  --malloc=MODE         fixed | default | both (default both: fixed thresholds, then one round with glibc defaults)
  --pin / --no-pin      pin servers and generator to different cores with taskset (default: pin when taskset and 2 cores exist)
  --generator=G         auto | go | node: the load generator (default auto: the Go one of bench/gogen when 'go' builds it)
  --profile             CPU-profile our server over each measured window, heap-snapshot it in (g) (bench/results/profiles/),
                        and print the top self-time functions and heap growth per connection
  --ours=VIA            auto | plugin | upgrader: how "ours" is built (default auto: the plugin if it loads)
  --from-source         run lib/ through tsx instead of compiling it with tsc first (the default, as published)
  --write / --no-write  write bench/RESULTS.md (default: yes, except with --quick)`

/** Parses argv; throws an Error with a message meant for the user on bad input. */
export function parseArgs (argv: string[]): Settings {
  const options = new Map<string, string>()
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg)
    if (match === null) throw new Error(`unknown argument ${arg}\n${USAGE}`)
    options.set(match[1]!, match[2] ?? 'true')
  }
  const known = ['quick', 'scenario', 'servers', 'rounds', 'duration', 'warmup', 'connections', 'size', 'malloc', 'pin', 'no-pin', 'generator', 'profile', 'ours', 'from-source', 'write', 'no-write', 'help']
  for (const name of options.keys()) if (!known.includes(name)) throw new Error(`unknown option --${name}\n${USAGE}`)
  if (options.has('help')) throw new Error(USAGE)
  const quick = options.has('quick')
  const scenarios = list(options.get('scenario'), LETTERS, 'scenario')
  const servers = list(options.get('servers'), SERVER_ORDER, 'servers') as ServerKind[]
  const malloc = options.get('malloc') ?? (quick ? 'fixed' : 'both')
  if (malloc !== 'fixed' && malloc !== 'default' && malloc !== 'both') throw new Error('--malloc must be fixed, default or both')
  const ours = options.get('ours') ?? 'auto'
  if (ours !== 'auto' && ours !== 'plugin' && ours !== 'upgrader') throw new Error('--ours must be auto, plugin or upgrader')
  const generator = options.get('generator') ?? 'auto'
  if (generator !== 'auto' && generator !== 'go' && generator !== 'node') throw new Error('--generator must be auto, go or node')
  if (options.has('pin') && options.has('no-pin')) throw new Error('--pin and --no-pin contradict each other')
  return {
    quick,
    scenarios,
    servers: SERVER_ORDER.filter((s) => servers.includes(s)),
    rounds: integer(options.get('rounds'), quick ? 1 : 3, 'rounds'),
    warmupMs: integer(options.get('warmup'), quick ? 200 : 1000, 'warmup'),
    durationMs: integer(options.get('duration'), quick ? 400 : 3000, 'duration'),
    messageSize: options.has('size') ? integer(options.get('size'), 0, 'size') : undefined,
    manyConnections: integer(options.get('connections'), quick ? 1000 : 10_000, 'connections'),
    broadcastRepeats: quick ? 3 : 10,
    handshakeConcurrency: 50,
    malloc,
    pin: !options.has('no-pin'),
    generator,
    profile: options.has('profile'),
    ours,
    fromSource: options.has('from-source'),
    write: options.has('no-write') ? false : options.has('write') || (!quick && !options.has('size')),
    command: ['npm run bench', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ')
  }
}

function list (value: string | undefined, allowed: string[], name: string): string[] {
  if (value === undefined) return allowed
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const item of items) if (!allowed.includes(item)) throw new Error(`--${name}: unknown ${JSON.stringify(item)} (allowed: ${allowed.join(', ')})`)
  return allowed.filter((a) => items.includes(a))
}

function integer (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${value}`)
  return n
}
