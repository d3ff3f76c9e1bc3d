// npm run bench:fanout-cost (bench/fanout-cost.ts) cannot rot: a tiny run gives a row per server
// and burst, each with CPU numbers, and the ws ÷ ours ratio. No timing is asserted.
import t from 'tap'
import { spawn } from 'node:child_process'

t.test('a tiny run reports every server for every burst, with numbers', async (t) => {
  const { code, stdout, stderr } = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/fanout-cost.ts', '--connections=40', '--rounds=1', '--bursts=1,3'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
    child.on('close', (exit) => resolve({ code: exit, stdout: out, stderr: err }))
  })
  t.equal(code, 0, stderr)
  for (const burst of [1, 3]) {
    for (const server of ['raw TCP write loop', 'ws loop of send', 'ours, Hub publish']) {
      const row = stdout.split('\n').find((line) => line.startsWith(`| ${burst} | ${server} |`))
      t.ok(row, `a row for ${server} with ${burst} message(s) per tick`)
      const cells = row!.split('|').slice(3, 8).map((cell) => Number(cell.trim().replace(/,/g, '')))
      t.ok(cells.every((value) => Number.isFinite(value) && value >= 0), `numbers in ${row}`)
    }
    t.match(stdout, new RegExp(`\\| ${burst} \\| ws ÷ ours \\(CPU per delivery\\) \\| \\| \\| \\d+\\.\\d\\d×`))
  }
})
