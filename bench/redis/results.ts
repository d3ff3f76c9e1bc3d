import { existsSync, readFileSync, writeFileSync } from 'node:fs'

const BEGIN = '<!-- bench-redis:begin (written by bench/redis.ts; edit outside these markers) -->'
const END = '<!-- bench-redis:end -->'
const HEADING = '## Fan-out across processes through Redis (`npm run bench:redis`)'

/**
 * The text of RESULTS.md with `generated` between the Redis section's markers; without them (a
 * first run, or markers lost) the section is added at the end and the rest is kept as it was.
 */
export function withRedisResults (current: string, generated: string): string {
  const start = current.indexOf(BEGIN)
  const end = start < 0 ? -1 : current.indexOf(END, start)
  if (start < 0 || end < 0) return `${current.trimEnd()}\n\n${HEADING}\n\n${BEGIN}\n${generated.trim()}\n${END}\n`
  return `${current.slice(0, start + BEGIN.length)}\n${generated.trim()}\n${current.slice(end)}`
}

/** Rewrites the Redis section of `file` (created when missing). */
export function writeRedisResults (file: string, generated: string): void {
  writeFileSync(file, withRedisResults(existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n', generated))
}
