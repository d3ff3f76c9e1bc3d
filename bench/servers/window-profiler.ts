import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'

/**
 * Profiles only the measured window: started at the runner's first CPU query (window start),
 * stopped and written at the second (window end), so start-up and module loading stay out.
 */
export class WindowProfiler {
  readonly #file: string
  readonly #session = new Session()
  #queries = 0

  constructor (file: string) {
    this.#file = file
    this.#session.connect()
  }

  /** Called on every CPU query; resolves once the profiler has started or the profile is written. */
  async onCpuQuery (): Promise<void> {
    this.#queries++
    if (this.#queries === 1) {
      await this.#post('Profiler.enable')
      await this.#post('Profiler.start')
    } else if (this.#queries === 2) {
      const { profile } = await this.#post('Profiler.stop') as { profile: unknown }
      writeFileSync(this.#file, JSON.stringify(profile))
    }
  }

  #post (method: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#session.post(method, (err: Error | null, result?: unknown) => { if (err !== null) reject(err); else resolve(result) })
    })
  }
}
