// The echo example (`npm run echo`, or `npm run echo:http2` with examples/echo-http2.ts) in its own
// process, as the conformance, interop and hardening tests run it: started through tsx on a free
// port, which it prints on its first line.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/** Starts `file` (examples/echo.ts by default) with `env` added to this process's environment; resolves with the child and its port. */
export async function startEchoExample (env: NodeJS.ProcessEnv = {}, file = 'examples/echo.ts'): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const [line] = await once(child.stdout!, 'data') as [Buffer]
  const match = /:(\d+)\/echo/.exec(line.toString())
  if (match === null) {
    child.kill()
    throw new Error(`echo example printed ${line.toString()}`)
  }
  return { child, port: Number(match[1]) }
}
