// The bench's arithmetic and its RESULTS.md rewrite: medians over rounds, ratios against the other
// servers, the targets, and hand-written analysis that survives every run. No timing here:
// these are the pure parts of bench/runner, fed with made-up samples.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { ServerKind } from '../bench/shared/messages.js'
import type { Sample } from '../bench/runner/measure.js'
import { SCENARIOS, selectScenarios } from '../bench/runner/scenarios.js'
import { parseArgs } from '../bench/runner/args.js'
import { median, ratio, summarize, targetStatus, type ScenarioRun } from '../bench/runner/stats.js'
import { withResults, writeResults } from '../bench/runner/results-file.js'
import { MALLOC_ENV, serverEnv } from '../bench/runner/environment.js'

const BEGIN = '<!-- bench:begin (written by bench/run.ts; edit outside these markers) -->'
const END = '<!-- bench:end -->'

function sample (fields: Partial<Sample>): Sample {
  const metrics = ['msgsPerSec', 'mbPerSec', 'p50Ms', 'p99Ms', 'serverCpu', 'genCpu', 'otherCpu', 'timeToAllMs', 'rssPerConnKiB', 'heapPerConnKiB']
  return { ...Object.fromEntries(metrics.map((m) => [m, NaN])), extensions: '', ...fields } as Sample
}

function run (letterOrKey: string, samples: Partial<Record<ServerKind, Array<Partial<Sample>>>>): ScenarioRun {
  const scenario = SCENARIOS.find((s) => s.key === letterOrKey)!
  const map = new Map<ServerKind, Sample[]>()
  for (const [kind, list] of Object.entries(samples)) map.set(kind as ServerKind, list.map(sample))
  return { scenario, samples: map, impl: new Map() }
}

t.test('median takes the middle of the finite values', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([5, NaN, 1, Infinity, 3]), 3, 'NaN and Infinity are not values')
  t.ok(Number.isNaN(median([NaN])))
  t.ok(Number.isNaN(median([])))
})

t.test('summarize takes medians over the rounds that measured something and keeps every error', async (t) => {
  const summary = summarize([
    sample({ msgsPerSec: 100, p99Ms: 9 }),
    sample({ msgsPerSec: 300, p99Ms: 1 }),
    sample({ msgsPerSec: 200, p99Ms: 5 }),
    sample({ na: 'not supported', msgsPerSec: 1e9 }),
    sample({ error: 'EMFILE', msgsPerSec: NaN })
  ])
  t.equal(summary.msgsPerSec, 200)
  t.equal(summary.p99Ms, 5, 'each metric has its own median')
  t.equal(summary.rounds, 4, 'the n/a round is not counted')
  t.equal(summary.na, undefined)
  t.equal(summary.error, 'EMFILE')
  const none = summarize([sample({ na: 'no deflate' }), sample({ na: 'no deflate' })])
  t.equal(none.rounds, 0)
  t.equal(none.na, 'no deflate')
})

t.test('ratios compare the medians of ours with another server', async (t) => {
  const r = run('b', { wsconn: [{ msgsPerSec: 500 }, { msgsPerSec: 600 }, { msgsPerSec: 400 }], 'fastify-websocket': [{ msgsPerSec: 100 }] })
  t.equal(ratio(r, 'fastify-websocket'), 5)
  t.ok(Number.isNaN(ratio(r, 'tcp')), 'a server that did not run gives no ratio')
})

t.test('the targets are the issue\'s, checked on the right side', async (t) => {
  const targets = Object.fromEntries(SCENARIOS.filter((s) => s.target).map((s) => [s.key, s.target]))
  t.same(targets, {
    a: { against: 'tcp', min: 0.97 },
    b: { against: 'fastify-websocket', min: 3 },
    c: { against: 'tcp', min: 0.8 },
    d: { against: 'tcp', min: 0.8 },
    e: { against: 'fastify-websocket', min: 3 },
    f: { against: 'ws', min: 2 },
    g: { against: 'tcp', max: 1.25 },
    h: { against: 'fastify-websocket', min: 1.2 }
  })
  t.equal(targetStatus(run('b', { wsconn: [{ msgsPerSec: 300 }], 'fastify-websocket': [{ msgsPerSec: 100 }] })), 'met', 'exactly 3×')
  t.equal(targetStatus(run('b', { wsconn: [{ msgsPerSec: 299 }], 'fastify-websocket': [{ msgsPerSec: 100 }] })), 'MISSED')
  t.equal(targetStatus(run('g', { wsconn: [{ rssPerConnKiB: 5 }], tcp: [{ rssPerConnKiB: 4 }] })), 'met', 'memory: lower wins')
  t.equal(targetStatus(run('g', { wsconn: [{ rssPerConnKiB: 5.1 }], tcp: [{ rssPerConnKiB: 4 }] })), 'MISSED')
  t.equal(targetStatus(run('a', { wsconn: [{ msgsPerSec: 100 }] })), 'n/a', 'no raw TCP run')
})

t.test('RESULTS.md: only the part between the markers is rewritten', async (t) => {
  const hand = `# Benchmark results\n\nintro\n\n${BEGIN}\nold table\n${END}\n\n## Reading the numbers\n\nanalysis\n`
  const text = withResults(hand, '\n new table \n')
  t.equal(text, `# Benchmark results\n\nintro\n\n${BEGIN}\nnew table\n${END}\n\n## Reading the numbers\n\nanalysis\n`)
  t.equal(withResults(text, 'newer'), text.replace('new table', 'newer'), 'a second run replaces the first')

  const fresh = withResults(undefined, 'first table')
  t.ok(fresh.startsWith(`# Benchmark results\n\n${BEGIN}\nfirst table\n${END}\n\n## Reading the numbers`), 'a new file starts from the skeleton')
})

t.test('RESULTS.md without its markers keeps its text below a new generated part', async (t) => {
  const lost = '# Benchmark results\n\nanalysis someone wrote\n'
  t.equal(withResults(lost, 'table'), `${BEGIN}\ntable\n${END}\n\n${lost}`)
  const endFirst = `${END}\nnotes\n${BEGIN}\n`
  t.equal(withResults(endFirst, 'table'), `${BEGIN}\ntable\n${END}\n\n${endFirst}`, 'markers out of order count as lost')
})

t.test('writeResults creates the file and keeps the analysis on later runs', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-results-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'RESULTS.md')
  writeResults(file, 'run 1')
  writeFileSync(file, readFileSync(file, 'utf8').replace('goes here', 'goes here: my notes'))
  writeResults(file, 'run 2')
  const text = readFileSync(file, 'utf8')
  t.match(text, `${BEGIN}\nrun 2\n${END}`)
  t.notMatch(text, 'run 1')
  t.match(text, 'goes here: my notes')
})

t.test('serverEnv: fixed malloc thresholds, unless the runner\'s environment sets its own', async (t) => {
  const saved = { mmap: process.env.MALLOC_MMAP_THRESHOLD_, trim: process.env.MALLOC_TRIM_THRESHOLD_ }
  t.teardown(() => {
    for (const [name, value] of [['MALLOC_MMAP_THRESHOLD_', saved.mmap], ['MALLOC_TRIM_THRESHOLD_', saved.trim]] as const) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })
  delete process.env.MALLOC_MMAP_THRESHOLD_
  delete process.env.MALLOC_TRIM_THRESHOLD_
  const fixed = serverEnv('fixed', '/ours')
  t.equal(fixed.env.MALLOC_MMAP_THRESHOLD_, MALLOC_ENV.MALLOC_MMAP_THRESHOLD_)
  t.equal(fixed.env.MALLOC_TRIM_THRESHOLD_, MALLOC_ENV.MALLOC_TRIM_THRESHOLD_)
  t.equal(fixed.env.BENCH_OURS_ROOT, '/ours')

  process.env.MALLOC_TRIM_THRESHOLD_ = '1073741824'
  const overridden = serverEnv('fixed', '/ours')
  t.equal(overridden.env.MALLOC_TRIM_THRESHOLD_, '1073741824', 'the runner\'s own value wins')
  t.equal(overridden.env.MALLOC_MMAP_THRESHOLD_, MALLOC_ENV.MALLOC_MMAP_THRESHOLD_, 'the other stays fixed')
  t.match(overridden.note, /MALLOC_TRIM_THRESHOLD_=1073741824/, 'the header says which value ran')

  const glibc = serverEnv('default', '/ours')
  t.notOk('MALLOC_TRIM_THRESHOLD_' in glibc.env, 'the default mode runs without either threshold')
  t.notOk('MALLOC_MMAP_THRESHOLD_' in glibc.env)
})

t.test('--size: the echo scenarios run with another message size, say so, and write no RESULTS.md', async (t) => {
  const settings = parseArgs(['--scenario=a,d,f', '--size=60000'])
  t.equal(settings.messageSize, 60000)
  t.equal(settings.write, false, 'a run with another size does not rewrite RESULTS.md')
  t.equal(parseArgs(['--size=60000', '--write']).write, true, 'unless --write says so')
  t.equal(parseArgs([]).messageSize, undefined, 'without --size each scenario keeps its own')
  t.throws(() => parseArgs(['--size=0']), /--size must be a positive integer/)

  const selected = selectScenarios(settings)
  t.same(selected.map((s) => s.letter), ['a', 'd', 'f'], 'the chosen scenarios, in report order')
  for (const scenario of selected) {
    const job = scenario.job(1, 'ws', settings, 10) as { type: string, size: number }
    if (scenario.mode === 'echo') {
      t.equal(job.size, 60000, `(${scenario.letter}) echoes 60000 B messages`)
      t.match(scenario.title, /here with 60000 B messages \(--size\)$/, `(${scenario.letter}) says so in its title`)
    } else {
      t.notMatch(scenario.title, /--size/, `(${scenario.letter}) is not an echo and keeps its title`)
    }
  }
  const own = selectScenarios(parseArgs(['--scenario=d']))[0]!
  t.equal((own.job(1, 'ws', parseArgs(['--scenario=d']), 10) as { size: number }).size, 1024 * 1024, 'without --size, (d) echoes 1 MiB')
})
