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

/** Replaces the generated part of RESULTS.md, keeping whatever was written around it. */
export function writeResults (file: string, generated: string): void {
  const current = existsSync(file) ? readFileSync(file, 'utf8') : SKELETON
  const start = current.indexOf(BEGIN)
  const end = current.indexOf(END)
  const base = start >= 0 && end > start ? current : SKELETON
  const from = base.indexOf(BEGIN) + BEGIN.length
  const to = base.indexOf(END)
  writeFileSync(file, `${base.slice(0, from)}\n${generated.trim()}\n${base.slice(to)}`)
}
