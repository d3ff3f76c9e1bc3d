import { SCENARIOS } from './scenarios/index.js'
import { TARGETS } from './target.js'

/** What `npm run stress` was asked to do. */
export interface StressSettings {
  quick: boolean
  scenarios: string[]
  targets: string[]
  command: string
}

export const USAGE = `usage: npm run stress -- [options]
  --quick                 1/10 of every count (for development; bounds unchanged)
  --scenario=a,b          scenarios to run (default all): ${SCENARIOS.map((s) => s.name).join(', ')}
  --target=echo,plugin    servers to run them against (default both):
${TARGETS.map((t) => `                            ${t.name}: ${t.label}`).join('\n')}`

/** Parses argv; throws an Error meant for the user on bad input (or for --help). */
export function parseStressArgs (argv: string[]): StressSettings {
  const options = new Map<string, string>()
  for (const arg of argv) {
    const match = /^--([a-z]+)(?:=(.*))?$/.exec(arg)
    if (match === null || !['quick', 'scenario', 'target', 'help'].includes(match[1]!)) throw new Error(`unknown argument ${arg}\n${USAGE}`)
    options.set(match[1]!, match[2] ?? 'true')
  }
  if (options.has('help')) throw new Error(USAGE)
  return {
    quick: options.has('quick'),
    scenarios: pick(options.get('scenario'), SCENARIOS.map((s) => s.name), 'scenario'),
    targets: pick(options.get('target'), TARGETS.map((t) => t.name), 'target'),
    command: ['npm run stress', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ')
  }
}

function pick (value: string | undefined, allowed: string[], name: string): string[] {
  if (value === undefined) return allowed
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const item of items) if (!allowed.includes(item)) throw new Error(`--${name}: unknown ${JSON.stringify(item)} (allowed: ${allowed.join(', ')})\n${USAGE}`)
  if (items.length === 0) throw new Error(`--${name}: give at least one of ${allowed.join(', ')}\n${USAGE}`)
  return allowed.filter((a) => items.includes(a))
}
