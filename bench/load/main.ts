// The load generator process: one event loop driving many connections. It takes one job at a
// time over IPC from bench/run.ts and answers with its measurements.
import type { GeneratorCommand, GeneratorEvent, Job, JobResult } from '../shared/messages.js'
import { runBroadcast } from './broadcast.js'
import { runEcho } from './echo.js'
import { runFanout } from './fanout.js'
import { runHandshakes } from './handshake.js'
import { runH2Echo } from './h2-echo.js'
import { runH2Handshakes } from './h2-handshake.js'
import { runIdle } from './idle.js'
import { emptyResult } from './result.js'

let release: (() => void) | undefined

const emit = (event: GeneratorEvent): void => { process.send!(event) }

/** Resolves when the runner says the held connections may go (after it measured the server). */
const released = (): Promise<void> => new Promise((resolve) => { release = resolve })

function run (job: Job): Promise<JobResult> {
  switch (job.type) {
    case 'echo': return runEcho(job, emit)
    case 'broadcast': return runBroadcast(job, emit, released)
    case 'idle': return runIdle(job, emit, released)
    case 'handshake': return runHandshakes(job, emit)
    case 'fanout': return runFanout(job, emit, released)
    case 'h2-echo': return runH2Echo(job, emit)
    case 'h2-handshake': return runH2Handshakes(job, emit)
  }
}

process.on('message', (command: GeneratorCommand) => {
  if (command.cmd === 'release') {
    release?.()
    release = undefined
    return
  }
  run(command.job).then(
    (result) => emit({ event: 'result', result }),
    (err: unknown) => emit({ event: 'result', result: { ...emptyResult(), error: (err as Error).message ?? String(err) } })
  )
})
process.on('disconnect', () => process.exit(0))
// A normal exit, so that a --cpu-prof profile of the generator gets written.
process.on('SIGTERM', () => process.exit(0))
