// npm run stress: hostile and heavy workloads against `npm run echo` and a plain plugin
// registration, each server in its own process, driven from this one over raw sockets on
// 127.0.0.1. One line per scenario and target, with a verdict against its bounds; the exit code
// is non-zero when any scenario fails. See bench/README.md ("Stress") and the README's Reliability section.
import os from 'node:os'
import { installCleanup } from './runner/procs.js'
import { parseStressArgs, type StressSettings } from './stress/args.js'
import { FD_HEADROOM, fdLimit, fdLimitNote } from './stress/limits.js'
import { PeakRss } from './stress/peak.js'
import { echoCheck, sleep } from './stress/peer.js'
import { duration, mib, type Context, type Outcome, type Scenario } from './stress/scenario.js'
import { SCENARIOS } from './stress/scenarios/index.js'
import { TARGETS, TargetProcess, type TargetSpec } from './stress/target.js'

const PATH = '/echo'
/** Descriptors a server may keep beyond its baseline after a scenario (lazily opened internals). */
const FD_SLACK = 3
const SETTLE_MS = 15_000
const SCENARIO_TIMEOUT_MS = 600_000
const IDLE_CONNECTIONS = 10_000

async function main (): Promise<number> {
  let settings: StressSettings
  try {
    settings = parseStressArgs(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    return 2
  }
  const scale = settings.quick ? 0.1 : 1
  const needed = Math.round(IDLE_CONNECTIONS * scale) + FD_HEADROOM
  installCleanup()
  console.log([
    `fastify-wsconn stress, ${settings.quick ? 'QUICK run (--quick: 1/10 of every count)' : 'full run'}`,
    `date ${new Date().toISOString()}; node ${process.version}; ${os.availableParallelism()} cores (${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}); ${os.platform()} ${os.arch()}`,
    `command: ${settings.command}`,
    `${fdLimitNote(needed)}; every server is a fresh process per scenario, started through tsx as its npm script does, with PORT=0 on 127.0.0.1`,
    'columns: the scenario\'s figures | the server: RSS peak (VmHWM, reset before the scenario) and RSS and JS heap after a GC, each against the baseline after one warm-up echo; open fds after the run; a fresh client\'s echo | verdict'
  ].join('\n'))
  const maxConnections = Math.max(100, fdLimit() - FD_HEADROOM)
  let failed = 0
  for (const spec of TARGETS.filter((t) => settings.targets.includes(t.name))) {
    console.log(`\n== ${spec.name}: ${spec.label} ==`)
    for (const scenario of SCENARIOS.filter((s) => settings.scenarios.includes(s.name))) {
      const { line, ok } = await runOne(spec, scenario, scale, maxConnections)
      console.log(line)
      if (!ok) failed++
    }
  }
  console.log(`\n${failed === 0 ? 'all scenarios ok' : `${failed} scenario run(s) FAILED`}`)
  return failed === 0 ? 0 : 1
}

/** Starts a fresh server, runs one scenario against it, checks the bounds, stops the server. */
async function runOne (spec: TargetSpec, scenario: Scenario, scale: number, maxConnections: number): Promise<{ line: string, ok: boolean }> {
  const label = `${spec.name.padEnd(6)} ${scenario.name.padEnd(18)}`
  let target: TargetProcess
  try {
    target = await TargetProcess.start(spec, scenario.compression === true)
  } catch (err) {
    return { line: `${label} server did not start: ${(err as Error).message} | FAIL`, ok: false }
  }
  try {
    const warm = await echoCheck(target.port, PATH)
    if (warm instanceof Error) return { line: `${label} the server does not serve a first client: ${warm.message} | FAIL`, ok: false }
    const context: Context = { target, path: PATH, scale, maxConnections }
    const base = await target.sampleAfterGc()
    const peak = new PeakRss(target.pid)
    const outcome = await runScenario(scenario, context)
    const { peak: peakRss, how } = peak.stop()
    const failures = [...outcome.failures]
    if (target.exited !== undefined) {
      failures.push(`the server died (${target.exited})`)
      return { line: `${label} ${outcome.figures} | ${verdict(failures)}`, ok: false }
    }
    const settled = await settle(target, base.fds + FD_SLACK)
    const after = await target.sampleAfterGc()
    const fresh = await echoCheck(target.port, PATH)
    const peakGrowth = peakRss - base.rss
    const afterGrowth = after.rss - base.rss
    const peakBound = typeof scenario.peakRssBound === 'function' ? scenario.peakRssBound(context) : scenario.peakRssBound
    if (peakBound !== undefined && peakGrowth > peakBound) failures.push(`RSS peak ${mib(peakGrowth)} over the bound of ${mib(peakBound)}`)
    const heapGrowth = after.heapUsed - base.heapUsed
    if (scenario.afterGcRssBound !== undefined && afterGrowth > scenario.afterGcRssBound) failures.push(`RSS after GC ${mib(afterGrowth)} over the bound of ${mib(scenario.afterGcRssBound)}`)
    if (scenario.afterGcHeapBound !== undefined && heapGrowth > scenario.afterGcHeapBound) failures.push(`JS heap after GC ${mib(heapGrowth)} over the bound of ${mib(scenario.afterGcHeapBound)}`)
    if (settled === undefined) failures.push(`${after.fds - base.fds} descriptors still open ${SETTLE_MS / 1000} s after the run`)
    if (fresh instanceof Error) failures.push(`a fresh client was not served afterwards: ${fresh.message}`)
    const bounds = [
      peakBound !== undefined ? `peak ≤ ${mib(peakBound)}` : '',
      scenario.afterGcRssBound !== undefined ? `after GC ≤ ${mib(scenario.afterGcRssBound)}` : '',
      scenario.afterGcHeapBound !== undefined ? `heap ≤ ${mib(scenario.afterGcHeapBound)}` : ''
    ].filter(Boolean).join(', ')
    const server = [
      `RSS peak ${mib(peakGrowth)}${how === 'sampled' ? ' (sampled)' : ''}, after GC ${mib(afterGrowth)} (JS heap ${mib(heapGrowth)})${bounds === '' ? '' : ` [${bounds}]`}`,
      `fds ${signed(after.fds - base.fds)}${settled === undefined ? '' : ` (back in ${duration(settled)})`}`,
      `fresh client ${fresh instanceof Error ? 'FAILED' : duration(fresh)}`
    ].join('; ')
    return { line: `${label} ${outcome.figures} | ${server} | ${verdict(failures)}`, ok: failures.length === 0 }
  } finally {
    await target.stop()
  }
}

/** The scenario's outcome; a throw or a run past the timeout is a failure, not a crash of the harness. */
async function runScenario (scenario: Scenario, context: Context): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within ${SCENARIO_TIMEOUT_MS / 1000} s`)), SCENARIO_TIMEOUT_MS)
  })
  try {
    return await Promise.race([scenario.run(context), timeout])
  } catch (err) {
    const message = (err as Error).message ?? String(err)
    return { figures: `error: ${message}`, failures: [message] }
  } finally {
    clearTimeout(timer)
  }
}

/** Waits until the server holds at most `fds` descriptors; resolves with the time it took, undefined on timeout. */
async function settle (target: TargetProcess, fds: number): Promise<number | undefined> {
  const started = performance.now()
  while (target.sample().fds > fds) {
    if (performance.now() - started > SETTLE_MS) return undefined
    await sleep(100)
  }
  return performance.now() - started
}

function signed (count: number): string {
  return count >= 0 ? `+${count}` : String(count)
}

function verdict (failures: string[]): string {
  return failures.length === 0 ? 'ok' : `FAIL: ${failures.join('; ')}`
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error('stress: failed:', err)
  process.exit(1)
})
