import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs'
import path from 'node:path'
import { ROOT } from './procs.js'

/** The Go load generator's sources. */
export const GOGEN_SOURCE = path.join(ROOT, 'bench', 'gogen')

/**
 * The tool cache the Go build uses: the binaries (one per source hash) and Go's own build cache
 * and GOPATH, so that a fresh machine with a read-only HOME builds it too. Shared by worktrees
 * that share node_modules, which is safe: a binary's name is the hash of what it was built from.
 */
export const GOGEN_CACHE = path.join(ROOT, 'node_modules', '.cache', 'fastify-wsconn-bench', 'gogen')

/** A built Go generator, or why there is none. */
export type GoBuild = { binary: string, note: string } | { error: string }

/** The `go` command's version line, or undefined when there is no usable `go`. */
export function goVersion (): string | undefined {
  const result = spawnSync('go', ['version'], { encoding: 'utf8', env: goEnv() })
  return result.status === 0 ? result.stdout.trim() : undefined
}

/**
 * Builds bench/gogen with `go build` unless a binary of the same sources and Go version is cached.
 * Stdlib only: its go.mod requires nothing, and GOPROXY=off makes sure no module is ever fetched.
 */
export function buildGoGenerator (): GoBuild {
  const version = goVersion()
  if (version === undefined) return { error: 'no `go` command (install golang-go)' }
  const hash = createHash('sha256').update(version)
  for (const file of readdirSync(GOGEN_SOURCE).filter((f) => (f.endsWith('.go') && !f.endsWith('_test.go')) || f === 'go.mod').sort()) {
    hash.update(file).update(readFileSync(path.join(GOGEN_SOURCE, file)))
  }
  const binary = path.join(GOGEN_CACHE, 'bin', `gogen-${hash.digest('hex').slice(0, 16)}`)
  if (existsSync(binary)) return { binary, note: `${path.relative(ROOT, binary)} (cached; ${version})` }
  mkdirSync(path.dirname(binary), { recursive: true })
  // Built under a temporary name and renamed, so that an interrupted build never looks cached.
  const partial = `${binary}.${process.pid}.tmp`
  const result = spawnSync('go', ['build', '-trimpath', '-o', partial, '.'], { cwd: GOGEN_SOURCE, encoding: 'utf8', env: goEnv() })
  if (result.status !== 0 || !existsSync(partial)) {
    const why = (result.stderr + result.stdout).trim().split('\n').slice(0, 4).join(' / ')
    return { error: `go build failed: ${why || `exit ${String(result.status)}`}` }
  }
  renameSync(partial, binary)
  return { binary, note: `${path.relative(ROOT, binary)} (built; ${version})` }
}

/** Go's environment for builds and tests: every cache inside GOGEN_CACHE, no network, no user config. */
export function goEnv (): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOCACHE: path.join(GOGEN_CACHE, 'go-build'),
    GOPATH: path.join(GOGEN_CACHE, 'gopath'),
    GOMODCACHE: path.join(GOGEN_CACHE, 'gopath', 'pkg', 'mod'),
    GOENV: 'off',
    GOPROXY: 'off',
    GO111MODULE: 'on',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0'
  }
}
