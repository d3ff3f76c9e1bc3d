import { readFileSync } from 'node:fs'

/** The installed version of a package, or 'missing' when it cannot be resolved. */
export function packageVersion (name: string): string {
  try {
    const file = require.resolve(`${name}/package.json`)
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
  } catch {
    return 'missing'
  }
}
