// The package as a user gets it: `npm pack`'s tarball (built by the `prepare` script, as a publish
// would), its file list, its dependencies, "are the types wrong" on it, and tiny consumer projects
// (test/consumers/) installed from it in a temporary folder, compiled with tsc and run for real.
import t from 'tap'
import { execFile } from 'node:child_process'
import { builtinModules } from 'node:module'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { packageRoot } from './helpers/package.js'

const root = packageRoot()
// npm pack's build, an install, attw and four compilations take about 30 s of CPU: far more than
// the suite's 120 s per file on a machine that other jobs keep busy.
t.setTimeout(300_000)
const work = mkdtempSync(join(tmpdir(), 'fastify-wsconn-package-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

// Children are plain runs of npm, tsc and node: no coverage collection nor tsx loader from tap.
const env = { ...process.env }
delete env['NODE_V8_COVERAGE']
delete env['NODE_OPTIONS']

/** Runs a command and resolves with its stdout; rejects with its stderr when it exits non-zero. */
function run (file: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${stdout.slice(-4000)}\n${stderr.slice(-4000)}`, { cause: err }))
      else resolve(stdout)
    })
  })
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string
  version: string
  license: string
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
  devDependencies: Record<string, string>
  engines: { node: string }
}
/** The version of a dev dependency installed here, so that the temporary install finds it in npm's cache. */
const installed = (name: string): string => `${name}@${(JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version}`

interface PackResult { filename: string, files: Array<{ path: string }> }
interface AttwReport {
  problems: unknown[] | Record<string, unknown[]>
  analysis: { entrypoints: Record<string, { resolutions: Record<string, { resolution?: { fileName: string } }> }> }
}
let packed: PackResult
let tarball: string
let attw: Promise<AttwReport>
const app = join(work, 'app')
const installedPackage = join(app, 'node_modules', pkg.name)

t.before(async () => {
  const [result] = JSON.parse(await run(npm, ['pack', '--json', '--pack-destination', work], root)) as PackResult[]
  packed = result!
  tarball = join(work, packed.filename)
  // "Are the types wrong" reads the tarball alone: it runs while the tarball is installed.
  const cli = join(root, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js')
  attw = run(process.execPath, [cli, tarball, '--format', 'json', '--no-definitely-typed'], root).then((out) => JSON.parse(out) as AttwReport)
  attw.catch(() => {})
  cpSync(join(root, 'test', 'consumers'), app, { recursive: true })
  writeFileSync(join(app, 'package.json'), JSON.stringify({ private: true }))
  await run(npm, [
    'install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', '--loglevel=error',
    tarball, installed('fastify'), installed('ws'), installed('@types/ws'), installed('@types/node')
  ], app)
})

/** Every file under `dir`, relative to it, with forward slashes. */
function listFiles (dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split('\\').join('/'))
}

t.test('the tarball holds the built JavaScript, its declarations, the README and the LICENSE, nothing else', async (t) => {
  const sources = listFiles(join(root, 'lib'))
  t.ok(sources.length > 10, `${sources.length} files in lib/`)
  const expected = ['LICENSE', 'README.md', 'package.json', 'dist/entry.d.ts']
  for (const source of sources.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))) {
    const base = `dist/${source.slice(0, -'.ts'.length)}`
    expected.push(`${base}.js`, `${base}.d.ts`)
  }
  t.same(packed.files.map((file) => file.path).sort(), expected.sort(),
    'one .js and one .d.ts per lib/*.ts: no source maps (their sources are not published), no tests, no lib/')
  const dist = join(installedPackage, 'dist')
  const mapped = listFiles(dist).filter((file) => readFileSync(join(dist, file), 'utf8').includes('sourceMappingURL'))
  t.same(mapped, [], 'no file points at a source map')
  const license = readFileSync(join(installedPackage, 'LICENSE'), 'utf8')
  t.match(license, /^MIT License\n\nCopyright \(c\) 2026 fastify-wsconn contributors\n/)
  t.equal(pkg.license, 'MIT')
})

t.test('fastify is a peer dependency, and the built code needs nothing outside its dependencies', async (t) => {
  t.same(Object.keys(pkg.peerDependencies), ['fastify'])
  t.equal(pkg.dependencies['fastify'], undefined, 'fastify is not a dependency: an app on another 5.x minor keeps one copy')
  t.equal(pkg.dependencies['@sinclair/typebox'], undefined, 'nor TypeBox')
  t.ok(pkg.devDependencies['fastify'], 'fastify is a dev dependency for the tests')
  const allowed = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)])
  const dist = join(installedPackage, 'dist')
  const needed = new Set<string>()
  for (const file of listFiles(dist)) {
    // Comments dropped: TSDoc examples name packages that the code does not import.
    const text = readFileSync(join(dist, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
    // require("x") in the JavaScript; from 'x' and import('x') in the declarations.
    for (const [, specifier] of text.matchAll(/(?:require\(|from |import\()["']([^"']+)["']/g)) {
      if (specifier!.startsWith('.')) continue
      const name = specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!
      if (!name.startsWith('node:') && !builtinModules.includes(name)) needed.add(name)
    }
  }
  t.same([...needed].sort(), ['@fastify/error', 'fastify', 'fastify-plugin', 'redis'], 'the code and its types import @fastify/error, fastify, fastify-plugin and redis only')
  for (const name of needed) t.ok(allowed.has(name), `${name} is declared`)
  // The consumer projects below compile with skipLibCheck off in an install that has no TypeBox.
  t.notOk(existsSync(join(app, 'node_modules', '@sinclair', 'typebox')), 'the temporary install has no TypeBox')
})

t.test('engines names exactly the Node majors that .ci/run tests, this one among them', async (t) => {
  const ci = readFileSync(join(root, '.ci', 'run'), 'utf8')
  const majors = /^NODE_MAJORS="([\d ]+)"$/m.exec(ci)?.[1]?.split(' ')
  t.ok(majors !== undefined && majors.length >= 2, `.ci/run tests Node ${majors?.join(', ')}`)
  t.equal(pkg.engines.node, majors!.map((major) => `^${major}.0.0`).join(' || '))
  t.ok(majors!.includes(process.versions.node.split('.')[0]!), `Node ${process.version} is one of them`)
})

t.test('are the types wrong: no problem under node10, node16 (CommonJS and ES module) and bundler', async (t) => {
  const report = await attw
  const problems = Array.isArray(report.problems) ? report.problems : Object.values(report.problems).flat()
  t.same(problems, [], 'no problems')
  const resolutions = report.analysis.entrypoints['.']!.resolutions
  t.same(Object.keys(resolutions).sort(), ['bundler', 'node10', 'node16-cjs', 'node16-esm'])
  for (const [kind, { resolution }] of Object.entries(resolutions)) {
    t.match(resolution?.fileName, /\/dist\/entry\.d\.ts$/, `${kind} finds the CommonJS-shaped declarations`)
  }
})

/**
 * Compiles the ES module consumer in this process, with skipLibCheck off for the package's own
 * declarations only (checking every library's, as tsc does, doubles the time), and lists the names
 * that the packed dist/index.d.ts (lib/index.ts) and dist/entry.d.ts export, values and types.
 */
function compileEsmConsumer (): { errors: string[], all: string[], values: string[], entry: string[] } {
  const config = ts.getParsedCommandLineOfConfigFile(join(app, 'esm-nodenext', 'tsconfig.json'), { skipLibCheck: false }, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')) }
  })!
  const program = ts.createProgram(config.fileNames, config.options)
  const checked = program.getSourceFiles().filter((file) => config.fileNames.includes(file.fileName) || file.fileName.startsWith(`${installedPackage}/`))
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...checked.flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]),
    ...program.emit().diagnostics
  ]
  const errors = diagnostics.map((d) => `${d.file?.fileName}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
  const checker = program.getTypeChecker()
  const exportsOf = (file: string): ts.Symbol[] => checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(join(installedPackage, 'dist', file))!)!)
  const isValue = (symbol: ts.Symbol): boolean => (checker.getAliasedSymbol(symbol).flags & ts.SymbolFlags.Value) !== 0
  const names = (symbols: ts.Symbol[]): string[] => symbols.map((symbol) => symbol.name).sort()
  return { errors, all: names(exportsOf('index.d.ts')), values: names(exportsOf('index.d.ts').filter(isValue)), entry: names(exportsOf('entry.d.ts')) }
}

t.test('consumer projects compile against the tarball and run: default import, named imports and require() are the plugin', async (t) => {
  const compiled = Promise.all(['bundler', 'cjs-commonjs', 'cjs-checkjs'].map((project) => run(process.execPath, [tsc, '-p', '.'], join(app, project))))
  compiled.catch(() => {})
  const { errors, all, values, entry } = compileEsmConsumer()
  t.same(errors, [], 'the ES module consumer and the packed declarations have no error')
  t.same(entry, all, 'every export of lib/index.ts, types included, is declared by lib/entry.d.ts')
  t.ok(values.includes('Conn') && all.includes('ConnOptions') && all.length > values.length, `${values.length} values, ${all.length} names`)
  await compiled
  t.pass('tsc compiled the three other projects without an error')

  const projects = ['esm-nodenext', 'bundler', 'cjs-commonjs', 'cjs-checkjs']
  const outputs = await Promise.all(projects.map((project) => {
    const main = project === 'cjs-checkjs' ? 'main.js' : join('out', 'main.js')
    return run(process.execPath, [main], join(app, project))
  }))
  const [esm, bundler, cjs, checkJs] = outputs.map((output) => JSON.parse(output) as { echo: string, defaultIsPlugin: boolean, names?: string[], connIsClass?: boolean, textMessage?: number })
  // Node lists `__esModule` too (tsc's marker in dist/index.js), as undefined: the plugin does not
  // carry it, so that bundlers and esModuleInterop take module.exports itself as the default.
  // Node 23 and later also list 'module.exports' for every CommonJS module.
  esm!.names = esm!.names?.filter((name) => name !== '__esModule' && name !== 'module.exports')
  t.same(esm, { echo: 'hello from an ES module', defaultIsPlugin: true, textMessage: 1, names: values }, 'ESM (nodenext): echo, and every value export by name')
  t.same(bundler, { echo: 'hello from a bundler build', defaultIsPlugin: true, connIsClass: true }, 'bundler resolution')
  t.same(cjs, { echo: 'hello from CommonJS TypeScript', defaultIsPlugin: true }, 'CommonJS TypeScript without esModuleInterop')
  t.same(checkJs, { echo: 'hello from CommonJS JavaScript', defaultIsPlugin: true, connIsClass: true, names: values }, 'CommonJS JavaScript: require() carries every value export')
})
