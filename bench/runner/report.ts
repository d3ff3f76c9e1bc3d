import { RATIOS, cells, columns, ratioName, scenarioName, targetText, times } from './format.js'
import { ratio, summaryOf, targetStatus, type ScenarioRun } from './stats.js'

/** A scenario's rows as aligned plain text, with its ratio line. */
export function scenarioText (run: ScenarioRun): string {
  const header = columns(run.scenario)
  const rows = [header, ...[...run.samples.keys()].map((kind) => cells(run.scenario, kind, summaryOf(run, kind)))]
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  const lines = rows.map((r) => '  ' + r.map((cell, i) => (i === 0 || i === r.length - 1 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd())
  return [scenarioName(run.scenario), ...lines, '  ' + ratioLine(run)].join('\n')
}

function ratioLine (run: ScenarioRun): string {
  const parts = RATIOS.filter(([a, b]) => run.samples.has(a) && run.samples.has(b)).map((pair) => `${ratioName(pair)} ${times(ratio(run, pair[1], pair[0]))}`)
  if (run.scenario.metric === 'rss') parts.push('(lower is better)')
  const target = targetText(run.scenario)
  if (target !== '') parts.push(`target ${target}: route ${targetStatus(run)}, bare ${targetStatus(run, 'wsconn-bare')}`)
  return parts.join('   ')
}

/** All scenarios as Markdown: one table of medians and one of ratios against the targets. */
export function markdownTables (runs: ScenarioRun[]): string {
  const out: string[] = []
  for (const metric of ['rate', 'rss'] as const) {
    const group = runs.filter((r) => r.scenario.metric === metric)
    if (group.length === 0) continue
    const header = ['scenario', ...columns(group[0]!.scenario)]
    out.push(row(header), row(header.map(() => '---')))
    for (const run of group) {
      // The scenario is named on its first row only, to keep the table readable.
      const kinds = [...run.samples.keys()]
      for (const [i, kind] of kinds.entries()) out.push(row([i === 0 ? scenarioName(run.scenario) : '', ...cells(run.scenario, kind, summaryOf(run, kind))]))
    }
    out.push('')
  }
  out.push(row(['scenario', ...RATIOS.map(ratioName), 'target', 'route', 'bare']))
  out.push(row(['---', ...RATIOS.map(() => '---'), '---', '---', '---']))
  for (const run of runs) {
    const name = `(${run.scenario.letter}) ${run.scenario.key === 'g+deflate' ? 'deflate' : ''}`.trim()
    out.push(row([name, ...RATIOS.map(([ours, other]) => times(ratio(run, other, ours))), targetText(run.scenario), targetStatus(run), targetStatus(run, 'wsconn-bare')]))
  }
  return out.join('\n')
}

function row (cellsOfRow: string[]): string {
  return `| ${cellsOfRow.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`
}
