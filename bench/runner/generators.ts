import type { Job, JobResult } from '../shared/messages.js'
import { buildGoGenerator } from './build-gogen.js'
import { GeneratorProcess, type JobEvents, type LoadGenerator } from './generator-process.js'

/** Which load generator a run asks for: auto takes Go when `go` can build it. */
export type GeneratorChoice = 'auto' | 'go' | 'node'

/** Jobs bench/gogen runs; any other (the fan-out of bench:redis) goes to the Node generator. */
export const GO_JOBS: ReadonlyArray<Job['type']> = ['echo', 'handshake', 'idle', 'broadcast']

/**
 * The run's load generators: the Go one for the jobs it knows when chosen, the Node one for the
 * rest, each started on first use and pinned like the other.
 */
export class LoadGenerators implements LoadGenerator {
  /** One line for the report: which generator ran and how it was built. */
  readonly note: string
  readonly #goBinary: string | undefined
  readonly #cpu: number | undefined
  readonly #fdLimit: number | undefined
  #go: GeneratorProcess | undefined
  #node: GeneratorProcess | undefined

  private constructor (goBinary: string | undefined, note: string, cpu: number | undefined, fdLimit: number | undefined) {
    this.#goBinary = goBinary
    this.note = note
    this.#cpu = cpu
    this.#fdLimit = fdLimit
  }

  /** Builds the Go generator if chosen; throws when --generator=go cannot be honoured. */
  static create (choice: GeneratorChoice, cpu: number | undefined, fdLimit: number | undefined): LoadGenerators {
    const node = 'Node (bench/load: one event loop, pre-built masked frames, counts echoed frames from their headers; always fixed malloc thresholds)'
    if (choice === 'node') return new LoadGenerators(undefined, `load generator: ${node}; --generator=node`, cpu, fdLimit)
    const build = buildGoGenerator()
    if ('error' in build) {
      if (choice === 'go') throw new Error(`--generator=go: ${build.error}`)
      return new LoadGenerators(undefined, `load generator: ${node}; the Go one is unavailable: ${build.error}`, cpu, fdLimit)
    }
    const go = 'Go (bench/gogen: one edge-triggered epoll loop on one locked OS thread, pre-built masked frames, counts echoed frames from their headers)'
    return new LoadGenerators(build.binary, `load generator: ${go}, ${build.note}`, cpu, fdLimit)
  }

  run (job: Job, events: JobEvents): Promise<JobResult> {
    if (this.#goBinary !== undefined && GO_JOBS.includes(job.type)) {
      this.#go ??= new GeneratorProcess(this.#cpu, this.#fdLimit, this.#goBinary)
      return this.#go.run(job, events)
    }
    this.#node ??= new GeneratorProcess(this.#cpu, this.#fdLimit)
    return this.#node.run(job, events)
  }

  async stop (): Promise<void> {
    await Promise.all([this.#go?.stop(), this.#node?.stop()])
  }
}
