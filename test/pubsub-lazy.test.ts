// The redis package takes a few hundred milliseconds to load: importing fastify-wsconn, and
// registering the plugin without `pubsub`, must not load it.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

t.test('the redis package is loaded only when a RedisBus is created', async (t) => {
  // The compiled entry next to this compiled test (build/, made by `npm run test:build` before the suite runs).
  const entry = join(__dirname, '..', 'lib', 'index.js')
  const script = `
    const loaded = () => Object.keys(require.cache).some((file) => /node_modules[\\\\/](redis|@redis)[\\\\/]/.test(file))
    const wsconn = require(${JSON.stringify(entry)})
    const app = require('fastify')()
    app.register(wsconn).ready().then(() => {
      const before = loaded()
      new wsconn.RedisBus({ url: 'redis://127.0.0.1:1' }, () => {}, console).close().then(() => {
        process.stdout.write(JSON.stringify([before, loaded()]))
      })
    })`
  const output = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  t.same(JSON.parse(output), [false, true], 'not loaded by the import or the plugin, loaded by a RedisBus')
})
