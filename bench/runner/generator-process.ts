import type { ChildProcess } from 'node:child_process'
import type { GeneratorCommand, GeneratorEvent, Job, JobResult } from '../shared/messages.js'
import { MALLOC_ENV } from './environment.js'
import { spawnChild, spawnNode, stopChild, waitForMessage } from './procs.js'

/** Reactions of the runner to the generator's events during a job. */
export interface JobEvents {
  windowStart?: () => void
  windowEnd?: () => void
  /** Connections are held open; resolve when the generator may let them go. */
  holding?: (opened: number) => Promise<void>
}

/** Anything that runs load-generator jobs: one generator process, or a choice between them. */
export interface LoadGenerator {
  run: (job: Job, events: JobEvents) => Promise<JobResult>
  stop: () => Promise<void>
}

const JOB_TIMEOUT_MS = 10 * 60_000

/**
 * A long-lived load-generator process; it runs one job at a time. Node's (bench/load/main.ts) by
 * default, or the Go one (bench/gogen) given its binary: both speak the same protocol over
 * Node's IPC channel.
 */
export class GeneratorProcess implements LoadGenerator {
  readonly #child: ChildProcess

  constructor (cpu: number | undefined, fdLimit: number | undefined, goBinary?: string) {
    if (goBinary !== undefined) {
      this.#child = spawnChild([goBinary], { env: process.env, cpu, fdLimit })
      return
    }
    // The generator is the instrument: it always runs with fixed malloc thresholds.
    // BENCH_GENERATOR_NODE_FLAGS (e.g. "--cpu-prof") is for checking the generator itself.
    const nodeFlags = (process.env.BENCH_GENERATOR_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '')
    this.#child = spawnNode({ file: 'bench/load/main.ts', args: [], env: { ...process.env, ...MALLOC_ENV }, cpu, fdLimit, nodeFlags })
  }

  /** Runs a job and resolves with its result; event reactions run while it goes. */
  async run (job: Job, events: JobEvents): Promise<JobResult> {
    const onEvent = (message: GeneratorEvent): void => {
      if (message.event === 'window-start') events.windowStart?.()
      else if (message.event === 'window-end') events.windowEnd?.()
      else if (message.event === 'holding') {
        const hold = events.holding?.(message.opened) ?? Promise.resolve()
        hold.catch(() => {}).finally(() => this.#send({ cmd: 'release' }))
      }
    }
    this.#child.on('message', onEvent)
    try {
      const done = waitForMessage(this.#child, (m): m is GeneratorEvent & { event: 'result' } => (m as GeneratorEvent).event === 'result', JOB_TIMEOUT_MS, 'load generator')
      this.#send({ cmd: 'job', job })
      return (await done).result
    } finally {
      this.#child.off('message', onEvent)
    }
  }

  stop (): Promise<void> {
    return stopChild(this.#child, 1000)
  }

  #send (command: GeneratorCommand): void {
    this.#child.send(command)
  }
}
