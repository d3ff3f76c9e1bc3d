import { existsSync, mkdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import type { ServerKind } from '../shared/messages.js'
import type { Settings } from './args.js'
import type { Environment } from './environment.js'
import type { LoadGenerator } from './generator-process.js'
import { LABELS } from './format.js'
import { heapGrowthText } from './heap-summary.js'
import { measure, type HeapSnapshots, type Sample } from './measure.js'
import { ROOT } from './procs.js'
import type { Scenario } from './scenarios.js'
import { ServerProcess } from './server-process.js'
import type { ScenarioRun } from './stats.js'
import { waitForTimeWaitToDrain } from './time-wait.js'

/** Where --profile puts our server's CPU profiles. */
export const PROFILE_DIR = path.join(ROOT, 'bench', 'results', 'profiles')

/** What a scenario's rounds need besides the scenario. */
export interface RoundContext {
  settings: Settings
  environment: Environment
  generator: LoadGenerator
  serverEnv: NodeJS.ProcessEnv
  /** Tag for profile names, e.g. the malloc mode. */
  tag: string
  /** Profiles written, appended to as rounds finish. */
  profiles: string[]
  /** With --profile: summaries of our server's heap growth in the idle-RSS scenarios. */
  heapReports: string[]
}

/**
 * Runs the rounds of a group of scenarios that share one server configuration: per round, one
 * fresh process per server (started in parallel, then pinned), measured one after another in
 * the fixed order for each scenario of the group, then stopped. A full run uses groups of one
 * scenario, so every measurement gets fresh processes; --quick groups scenarios to save start-ups.
 */
export async function runGroup (scenarios: Scenario[], rounds: number, ctx: RoundContext): Promise<ScenarioRun[]> {
  const runs = scenarios.map((scenario): ScenarioRun => ({ scenario, samples: new Map(), impl: new Map() }))
  for (const run of runs) for (const kind of ctx.settings.servers) run.samples.set(kind, [])
  const { mode, compress } = scenarios[0]!
  for (let round = 1; round <= rounds; round++) {
    // All started before any is measured, so that no start-up competes with a measurement.
    const started = await Promise.allSettled(ctx.settings.servers.map((kind) => ServerProcess.start({
      kind,
      mode,
      compress,
      ours: ctx.settings.ours,
      env: ctx.serverEnv,
      cpu: ctx.environment.serverCpu,
      fdLimit: ctx.environment.raiseFdLimit ? ctx.environment.fdLimit : undefined,
      args: isOurs(kind) && ctx.settings.profile ? profileArgs(scenarios[0]!, ctx, round, kind) : []
    })))
    for (const run of runs) {
      for (const [i, kind] of ctx.settings.servers.entries()) {
        progress(`(${run.scenario.key}) round ${round}/${rounds}: ${kind}`)
        run.samples.get(kind)!.push(await measureOne(run.scenario, started[i]!, ctx, run, kind))
      }
    }
    await Promise.all(started.map((s) => s.status === 'fulfilled' ? s.value.stop() : undefined))
  }
  progress('')
  return runs
}

/**
 * Scenarios in groups that may share server processes (with `share`), else one group each.
 * Idle-RSS scenarios always get fresh processes: memory freed by earlier load would be reused.
 */
export function groupScenarios (scenarios: Scenario[], share: boolean): Scenario[][] {
  if (!share) return scenarios.map((s) => [s])
  const groups = new Map<string, Scenario[]>()
  for (const s of scenarios) {
    const key = s.metric === 'rss' ? s.key : `${s.mode}/${String(s.compress)}`
    groups.set(key, [...(groups.get(key) ?? []), s])
  }
  return [...groups.values()]
}

async function measureOne (scenario: Scenario, started: PromiseSettledResult<ServerProcess>, ctx: RoundContext, run: ScenarioRun, kind: ServerKind): Promise<Sample> {
  if (started.status === 'rejected') return failed(`server did not start: ${(started.reason as Error).message}`)
  const server = started.value
  run.impl.set(kind, server.impl + (ctx.environment.serverCpu !== undefined && !server.pinned ? ' (pinning failed)' : ''))
  const snapshots = isOurs(kind) && ctx.settings.profile && scenario.metric === 'rss' ? snapshotFiles(scenario, ctx, kind) : undefined
  try {
    if (scenario.drainTimeWait === true) await waitForTimeWaitToDrain()
    const sample = await measure(scenario, server, ctx.generator, ctx.settings, ctx.environment.manyConnections, ctx.environment.cores, snapshots)
    if (snapshots !== undefined && sample.error === undefined && existsSync(snapshots.after)) {
      ctx.heapReports.push(heapGrowthText(snapshots.before, snapshots.after, ctx.environment.manyConnections, `(${scenario.key}) ${LABELS[kind]}, ${path.relative(ROOT, snapshots.after)}`))
    }
    return sample
  } catch (err) {
    return failed((err as Error).message)
  }
}

/** Both paths of ours get profiled: what the route adds shows against the bare Upgrader. */
function isOurs (kind: ServerKind): boolean {
  return kind === 'wsconn' || kind === 'wsconn-bare'
}

/** Profile names: the scenario, then "-bare" for the bare Upgrader (the route keeps the names it always had). */
function profileBase (scenario: Scenario, ctx: RoundContext, kind: ServerKind): string {
  return path.join(PROFILE_DIR, `${scenario.key}${kind === 'wsconn-bare' ? '-bare' : ''}-${ctx.tag}`)
}

function snapshotFiles (scenario: Scenario, ctx: RoundContext, kind: ServerKind): HeapSnapshots {
  mkdirSync(PROFILE_DIR, { recursive: true })
  const base = profileBase(scenario, ctx, kind)
  rmSync(`${base}-after.heapsnapshot`, { force: true })
  return { before: `${base}-before.heapsnapshot`, after: `${base}-after.heapsnapshot` }
}

function profileArgs (scenario: Scenario, ctx: RoundContext, round: number, kind: ServerKind): string[] {
  if (scenario.metric !== 'rate') return []
  mkdirSync(PROFILE_DIR, { recursive: true })
  const file = `${profileBase(scenario, ctx, kind)}-r${round}.cpuprofile`
  ctx.profiles.push(file)
  return [`--profile=${file}`]
}

function failed (error: string): Sample {
  return { msgsPerSec: NaN, mbPerSec: NaN, p50Ms: NaN, p99Ms: NaN, serverCpu: NaN, genCpu: NaN, otherCpu: NaN, timeToAllMs: NaN, rssPerConnKiB: NaN, heapPerConnKiB: NaN, extensions: '', error }
}

function progress (text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`)
}
