// Where this package lives on disk, for the tests that look at it as a whole (its package.json,
// its tarball), whether they run from test/ through tsx or from build/test/ after tsc.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** The directory of fastify-wsconn's package.json, found upwards from this file. */
export function packageRoot (): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json')
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'fastify-wsconn') return dir
    if (dirname(dir) === dir) throw new Error('package.json of fastify-wsconn not found')
  }
}
