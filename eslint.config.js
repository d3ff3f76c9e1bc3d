'use strict'

const neostandard = require('neostandard')

module.exports = neostandard({
  ts: true,
  ignores: ['dist/**', 'build/**', 'node_modules/**', '.tap/**', 'coverage/**']
})
