/** Everything `npm run bench:http2` can be told on the command line. */
export interface Http2Settings {
  quick: boolean
  /** Scenario letters to run: a, c, h. */
  scenarios: string[]
  rounds: number
  warmupMs: number
  durationMs: number
  /** Concurrent handshake loops in (h), over HTTP/1.1 and over the one HTTP/2 session alike. */
  concurrency: number
  pin: boolean
  /** Both protocols over TLS (HTTPS and HTTP/2 over TLS) instead of cleartext (HTTP/1.1 and h2c). */
  tls: boolean
  /** Wait for earlier runs' TIME_WAIT sockets to go before each HTTP/1.1 handshake run. */
  drain: boolean
  fromSource: boolean
  write: boolean
  /** The command line, for the report. */
  command: string
}

/** The scenarios of `npm run bench` this bench runs over both protocols. */
export const HTTP2_LETTERS = ['a', 'c', 'h']

export const HTTP2_USAGE = `usage: npm run bench:http2 -- [options]
  --quick               smoke run: 1 round, short windows; no RESULTS.md unless --write
  --scenario=a,c,h      scenarios to run (default all three)
  --rounds=N            rounds, each with fresh server processes (default 3)
  --duration=MS         measured window per run (default 3000)
  --warmup=MS           unmeasured load before it (default 1000)
  --concurrency=N       concurrent handshake loops in (h) (default 50)
  --tls                 both protocols over TLS (ECDSA P-256 self-signed certificate): HTTPS beside HTTP/2 over TLS,
                        instead of cleartext HTTP/1.1 beside h2c; writes its own section of bench/RESULTS.md
  --no-pin              do not pin the servers to CPU 0 and the load generator to CPU 1
  --no-drain            do not wait for TIME_WAIT sockets to drain before HTTP/1.1 handshake runs
  --from-source         run lib/ through tsx instead of compiling it with tsc first
  --write / --no-write  write the HTTP/2 section of bench/RESULTS.md (default: yes, except with --quick)`

const OPTIONS = ['quick', 'scenario', 'rounds', 'duration', 'warmup', 'concurrency', 'tls', 'no-pin', 'no-drain', 'from-source', 'write', 'no-write', 'help']

/** Parses argv; throws an Error with a message meant for the user on bad input. */
export function parseHttp2Args (argv: string[]): Http2Settings {
  const options = new Map<string, string>()
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg)
    if (match === null) throw new Error(`unknown argument ${arg}\n${HTTP2_USAGE}`)
    if (!OPTIONS.includes(match[1]!)) throw new Error(`unknown option --${match[1]!}\n${HTTP2_USAGE}`)
    options.set(match[1]!, match[2] ?? 'true')
  }
  if (options.has('help')) throw new Error(HTTP2_USAGE)
  const quick = options.has('quick')
  const scenarios = (options.get('scenario') ?? HTTP2_LETTERS.join(',')).split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const s of scenarios) if (!HTTP2_LETTERS.includes(s)) throw new Error(`--scenario: unknown ${JSON.stringify(s)} (allowed: ${HTTP2_LETTERS.join(', ')})`)
  return {
    quick,
    scenarios: HTTP2_LETTERS.filter((l) => scenarios.includes(l)),
    rounds: integer(options.get('rounds'), quick ? 1 : 3, 'rounds'),
    warmupMs: integer(options.get('warmup'), quick ? 200 : 1000, 'warmup'),
    durationMs: integer(options.get('duration'), quick ? 400 : 3000, 'duration'),
    concurrency: integer(options.get('concurrency'), 50, 'concurrency'),
    tls: options.has('tls'),
    pin: !options.has('no-pin'),
    drain: !options.has('no-drain'),
    fromSource: options.has('from-source'),
    write: options.has('no-write') ? false : options.has('write') || !quick,
    command: ['npm run bench:http2', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ')
  }
}

function integer (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${value}`)
  return n
}
