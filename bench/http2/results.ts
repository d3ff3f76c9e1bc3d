import { existsSync, readFileSync, writeFileSync } from 'node:fs'

const BEGIN = '<!-- bench-http2:begin (written by bench/http2.ts; edit outside these markers) -->'
const END = '<!-- bench-http2:end -->'
const HEADING = '## WebSocket over HTTP/2 beside HTTP/1.1 (`npm run bench:http2`)'

/**
 * The text of RESULTS.md with `generated` between the HTTP/2 section's markers; without them (a
 * first run, or markers lost) the section is added at the end and the rest is kept as it was.
 */
export function withHttp2Results (current: string, generated: string): string {
  const start = current.indexOf(BEGIN)
  const end = start < 0 ? -1 : current.indexOf(END, start)
  if (start < 0 || end < 0) return `${current.trimEnd()}\n\n${HEADING}\n\n${BEGIN}\n${generated.trim()}\n${END}\n`
  return `${current.slice(0, start + BEGIN.length)}\n${generated.trim()}\n${current.slice(end)}`
}

/** Rewrites the HTTP/2 section of `file` (created when missing). */
export function writeHttp2Results (file: string, generated: string): void {
  writeFileSync(file, withHttp2Results(existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n', generated))
}
