import { existsSync, readFileSync, writeFileSync } from 'node:fs'

/** The markers and heading of the cleartext section, or with `tls` of the TLS one. */
function section (tls: boolean): { begin: string, end: string, heading: string } {
  const name = tls ? 'bench-http2-tls' : 'bench-http2'
  return {
    begin: `<!-- ${name}:begin (written by bench/http2.ts; edit outside these markers) -->`,
    end: `<!-- ${name}:end -->`,
    heading: tls
      ? '## WebSocket over HTTP/2 beside HTTP/1.1, both over TLS (`npm run bench:http2 -- --tls`)'
      : '## WebSocket over HTTP/2 beside HTTP/1.1, cleartext (`npm run bench:http2`)'
  }
}

/**
 * The text of RESULTS.md with `generated` between the HTTP/2 section's markers; without them (a
 * first run, or markers lost) the section is added at the end and the rest is kept as it was.
 */
export function withHttp2Results (current: string, generated: string, tls = false): string {
  const { begin: BEGIN, end: END, heading: HEADING } = section(tls)
  const start = current.indexOf(BEGIN)
  const end = start < 0 ? -1 : current.indexOf(END, start)
  if (start < 0 || end < 0) return `${current.trimEnd()}\n\n${HEADING}\n\n${BEGIN}\n${generated.trim()}\n${END}\n`
  return `${current.slice(0, start + BEGIN.length)}\n${generated.trim()}\n${current.slice(end)}`
}

/** Rewrites the HTTP/2 section of `file` (the TLS one with `tls`; the file is created when missing). */
export function writeHttp2Results (file: string, generated: string, tls: boolean): void {
  writeFileSync(file, withHttp2Results(existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n', generated, tls))
}
