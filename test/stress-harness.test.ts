// The stress harness (npm run stress, bench/stress.ts) works: two cheap scenarios in --quick mode
// against the echo example give one verdict line each and exit 0; bad options exit 2 with usage.
import t from 'tap'
import { spawn } from 'node:child_process'

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function stress (args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/stress.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('two quick scenarios against the echo example', { skip: process.platform !== 'linux' ? 'reads the server from /proc' : false }, async (t) => {
  const run = await stress(['--quick', '--target=echo', '--scenario=garbage,close-no-loss'])
  t.equal(run.code, 0, `exit code 0\n${run.stdout}${run.stderr}`)
  const lines = run.stdout.split('\n').filter((line) => line.startsWith('echo '))
  t.equal(lines.length, 2, 'one line per scenario')
  const garbage = lines.find((line) => /^echo\s+garbage\s/.test(line))
  const close = lines.find((line) => /^echo\s+close-no-loss\s/.test(line))
  t.match(garbage, /20 connections, .*close 1002.*\| ok$/, 'garbage: closed with 1002, server alive, verdict ok')
  t.match(close, /10 clients × 100 messages \+ close in one write: 10×all echoes, close 1000 .*\| ok$/, 'close-no-loss: every echo before the close')
  t.match(run.stdout, /RSS peak [+-][\d.]+ MiB, after GC/, 'server memory reported')
  t.match(run.stdout, /fds [+-]\d+/, 'server descriptors reported')
  t.match(run.stdout, /all scenarios ok/)
})

t.test('an unknown scenario is refused with the usage', async (t) => {
  const run = await stress(['--scenario=nope'])
  t.equal(run.code, 2, 'exit code 2')
  t.match(run.stderr, /--scenario: unknown "nope"/)
  t.match(run.stderr, /usage: npm run stress/)
})
