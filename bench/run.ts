// npm run bench: ours (through a plugin route and as a bare Upgrader), @fastify/websocket, ws and a
// raw TCP echo, each in its own process, driven by one load-generator process (Go or Node); see
// bench/README.md for what is measured and how.
import os from 'node:os'
import path from 'node:path'
import { SERVER_ORDER, parseArgs, type Settings } from './runner/args.js'
import { inspectEnvironment, serverEnv, type Environment } from './runner/environment.js'
import { LABELS } from './runner/format.js'
import { LoadGenerators } from './runner/generators.js'
import { buildOurs } from './runner/build-ours.js'
import { ROOT, installCleanup } from './runner/procs.js'
import { profileText } from './runner/profile.js'
import { markdownTables, scenarioText } from './runner/report.js'
import { writeResults } from './runner/results-file.js'
import { groupScenarios, runGroup } from './runner/run-scenario.js'
import { selectScenarios } from './runner/scenarios.js'
import type { ScenarioRun } from './runner/stats.js'
import { TIME_WAIT_CALM } from './runner/time-wait.js'

interface Section {
  note: string
  rounds: number
  runs: ScenarioRun[]
}

async function main (): Promise<void> {
  let settings: Settings
  try {
    settings = parseArgs(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    process.exitCode = 2
    return
  }
  installCleanup()
  const environment = inspectEnvironment(settings)
  const ours = settings.fromSource || !settings.servers.some((k) => k === 'wsconn' || k === 'wsconn-bare') ? { root: path.join(ROOT, 'lib'), note: 'lib/ from TypeScript source via tsx' } : buildOurs()
  let generator: LoadGenerators
  try {
    generator = LoadGenerators.create(settings.generator, environment.generatorCpu, environment.raiseFdLimit ? environment.fdLimit : undefined)
  } catch (err) {
    console.error((err as Error).message)
    process.exitCode = 2
    return
  }
  const header = [...headerLines(settings, environment, generator.note), `build of ours: ${ours.note}`]
  console.log(header.join('\n'))
  const profiles: string[] = []
  const heapReports: string[] = []
  const sections: Section[] = []
  const modes = settings.malloc === 'both' ? ['fixed', 'default'] as const : [settings.malloc]
  try {
    for (const mode of modes) {
      const { env, note } = serverEnv(mode, ours.root)
      const rounds = settings.malloc === 'both' && mode === 'default' ? 1 : settings.rounds
      console.log(`\n== ${note}; ${rounds} round${rounds > 1 ? 's, medians' : ''} ==`)
      const runs: ScenarioRun[] = []
      const selected = selectScenarios(settings)
      // --quick shares server processes between scenarios of the same configuration (not when profiling).
      for (const group of groupScenarios(selected, settings.quick && !settings.profile)) {
        const groupRuns = await runGroup(group, rounds, { settings, environment, generator, serverEnv: env, tag: mode, profiles, heapReports })
        if (!settings.quick) for (const run of groupRuns) console.log('\n' + scenarioText(run))
        runs.push(...groupRuns)
      }
      runs.sort((a, b) => selected.indexOf(a.scenario) - selected.indexOf(b.scenario))
      if (settings.quick) for (const run of runs) console.log('\n' + scenarioText(run))
      sections.push({ note, rounds, runs })
    }
  } finally {
    await generator.stop()
  }
  const implementations = [...implLines(sections), ...disturbance(sections)]
  console.log('\n' + implementations.join('\n'))
  const profileSummaries = [...profiles.map((file) => {
    try { return profileText(file, ROOT) } catch (err) { return `${file}: ${(err as Error).message}` }
  }), ...heapReports]
  if (profileSummaries.length > 0) console.log('\n' + profileSummaries.join('\n\n'))
  if (settings.write) {
    const file = path.join(ROOT, 'bench', 'RESULTS.md')
    writeResults(file, markdown(settings, header, implementations, sections, profileSummaries))
    console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
  }
}

function headerLines (s: Settings, e: Environment, generatorNote: string): string[] {
  const what = s.quick ? 'SMOKE RUN (--quick): short windows, not a benchmark result' : 'full run'
  return [
    `fastify-wsconn bench, ${what}`,
    `date ${new Date().toISOString()}; node ${e.node}; ${e.cores} cores (${e.cpuModel}); ${os.platform()} ${os.arch()}`,
    `command: ${s.command}`,
    `${e.pinNote}; ${e.fdNote}`,
    `${s.rounds} round(s) alternating ${SERVER_ORDER.filter((k) => s.servers.includes(k)).map((k) => LABELS[k]).join(', ')}; ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured per run; (f)/(g) with ${e.manyConnections} connections`,
    generatorNote,
    'CPU = process CPU time / wall time over the measured window (100% = one core busy); other CPU = the rest of the machine',
    ...(s.scenarios.includes('h') ? [`before each (h) run the runner waits (up to 70 s) until fewer than ${TIME_WAIT_CALM} TCP sockets are in TIME_WAIT, so no run pays for the connections of the one before`] : []),
    ...(s.quick && !s.profile ? ['--quick: scenarios with the same server configuration share server processes ((g) gets its own)'] : [])
  ]
}

function implLines (sections: Section[]): string[] {
  const impl = new Map<string, string>()
  for (const section of sections) for (const run of section.runs) for (const [kind, text] of run.impl) if (!impl.has(kind)) impl.set(kind, text)
  return [...impl].map(([kind, text]) => `${LABELS[kind as keyof typeof LABELS]}: ${text}`)
}

/** Warnings when other processes used the CPU, or when the load generator itself was near saturation. */
function disturbance (sections: Section[]): string[] {
  let worst = 0
  const saturated = new Set<string>()
  for (const section of sections) {
    for (const run of section.runs) {
      for (const [kind, samples] of run.samples) {
        for (const s of samples) {
          worst = Math.max(worst, s.otherCpu || 0)
          if (s.genCpu > 0.9) saturated.add(`(${run.scenario.letter}) ${LABELS[kind]}`)
        }
      }
    }
  }
  const out: string[] = []
  if (worst >= 0.1) out.push(`WARNING: other processes used up to ${Math.round(worst * 100)}% of a core during a measured window (column "other CPU"); those numbers are disturbed, rerun on an idle machine`)
  if (saturated.size > 0) out.push(`NOTE: the load generator used over 90% of its core in ${[...saturated].join(', ')}: there the server may not have been the bottleneck`)
  return out
}

function markdown (s: Settings, header: string[], implementations: string[], sections: Section[], profiles: string[]): string {
  const out = [s.quick ? '## Smoke run (`--quick`): not a benchmark result' : '## Latest run', '']
  out.push(...header.slice(1).map((line) => `- ${line}`), ...implementations.map((line) => `- ${line}`), '')
  out.push('msgs/s counts echoed messages (deliveries/s for (f), handshake cycles/s for (h)); MB/s is payload one way (10^6 B); latency is send to echo ((f): trigger to arrival; (h): connect to close); for (g) the number is server RSS growth / connections.', '')
  for (const section of sections) {
    out.push(`### ${section.note}; ${section.rounds} round${section.rounds > 1 ? 's, medians' : ''}`, '', markdownTables(section.runs), '')
  }
  if (profiles.length > 0) out.push('### CPU profiles of ours (files named -bare- are the bare Upgrader, the others the route)', '', '```', profiles.join('\n\n'), '```', '')
  return out.join('\n')
}

main().catch((err: unknown) => {
  console.error('bench failed:', err)
  process.exitCode = 1
})
