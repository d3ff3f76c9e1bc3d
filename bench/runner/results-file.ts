import { existsSync, readFileSync, writeFileSync } from 'node:fs'

const BEGIN = '<!-- bench:begin (written by bench/run.ts; edit outside these markers) -->'
const END = '<!-- bench:end -->'

const SKELETON = `# Benchmark results

${BEGIN}
${END}

## Reading the numbers

Analysis of missed targets, with profiles, goes here; \`npm run bench\` rewrites only the part between
the markers above.
`

/**
 * Replaces the generated part of RESULTS.md, keeping whatever was written around it. A file whose
 * markers were lost gets a new generated part on top, and its old text is kept below.
 */
export function writeResults (file: string, generated: string): void {
  writeFileSync(file, withResults(existsSync(file) ? readFileSync(file, 'utf8') : undefined, generated))
}

/** The text of RESULTS.md with `generated` between the markers; `current` is the file's text, if any. */
export function withResults (current: string | undefined, generated: string): string {
  let base = current ?? SKELETON
  const start = base.indexOf(BEGIN)
  if (start < 0 || base.indexOf(END, start) < 0) base = `${BEGIN}\n${END}\n\n${base}`
  const from = base.indexOf(BEGIN) + BEGIN.length
  const to = base.indexOf(END, from)
  return `${base.slice(0, from)}\n${generated.trim()}\n${base.slice(to)}`
}
