import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { ROOT } from './procs.js'

/**
 * Where lib/ is compiled for the bench: a tool cache under node_modules, which git and ESLint
 * ignore, and from which the compiled plugin still resolves fastify and fastify-plugin. One per
 * checkout, since git worktrees may share one node_modules.
 */
export const BUILD_DIR = path.join(ROOT, 'node_modules', '.cache', 'fastify-wsconn-bench', createHash('sha256').update(ROOT).digest('hex').slice(0, 12), 'lib')

/**
 * Compiles lib/ with tsc, as `npm run build` does for the published package, so that "ours" runs
 * the code users get: tsx's on-the-fly transform turns every imported constant into a getter
 * call, which showed up in profiles and is not what ships. Incremental, so reruns are quick.
 * Returns the directory to load from and a note for the report.
 */
export function buildOurs (): { root: string, note: string } {
  const stamp = path.join(BUILD_DIR, '.built-at')
  if (existsSync(stamp) && newestSource(path.join(ROOT, 'lib')) < statSync(stamp).mtimeMs) {
    return { root: BUILD_DIR, note: `lib/ compiled by tsc into ${path.relative(ROOT, BUILD_DIR)} (unchanged since the last build)` }
  }
  const startedAt = new Date()
  const tsc = require.resolve('typescript/lib/tsc.js')
  const result = spawnSync(process.execPath, [
    tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', BUILD_DIR,
    '--declaration', 'false', '--sourceMap', 'false', '--incremental', '--tsBuildInfoFile', path.join(BUILD_DIR, '.tsbuildinfo')
  ], { cwd: ROOT, encoding: 'utf8' })
  if (!existsSync(path.join(BUILD_DIR, 'upgrader.js'))) {
    const why = (result.stdout + result.stderr).trim().split('\n').slice(0, 3).join(' / ')
    return { root: path.join(ROOT, 'lib'), note: `lib/ from source via tsx (tsc build failed: ${why})` }
  }
  const warning = result.status === 0 ? '' : ' (tsc reported type errors; emitted anyway)'
  if (result.status === 0) {
    // Stamped with the build's start, so that an edit made while tsc ran triggers the next build.
    writeFileSync(stamp, startedAt.toISOString())
    utimesSync(stamp, startedAt, startedAt)
  }
  return { root: BUILD_DIR, note: `lib/ compiled by tsc into ${path.relative(ROOT, BUILD_DIR)}${warning}` }
}

/** The latest modification time of any file under `dir` (so the build is redone only when lib/ changed). */
function newestSource (dir: string): number {
  let newest = statSync(dir).mtimeMs
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(file) : statSync(file).mtimeMs)
  }
  return newest
}
