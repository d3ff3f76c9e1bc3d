'use strict'
// The suite runs on tsc's output in build/ (tsx's transform made tap's coverage meaningless), and
// coverage is measured on build/lib only, mapped back to lib/*.ts: every test may cover any of it.
const { readdirSync } = require('node:fs')
const { join } = require('node:path')

function listSources (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return listSources(path)
    return entry.name.endsWith('.js') ? [path] : []
  })
}

const sources = listSources(join('build', 'lib'))
module.exports = () => sources
