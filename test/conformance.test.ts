// The conformance cases (test/helpers/conformance-cases.ts) over TCP: HTTP/1.1 upgrades to the
// echo example in its own process. After its close frame the server ends TCP.
import t, { type Test } from 'tap'
import type { ChildProcess } from 'node:child_process'
import { WireClient } from './helpers/wire-client.js'
import { startEchoExample } from './helpers/echo-example.js'
import { conformanceCases } from './helpers/conformance-cases.js'

let child: ChildProcess
let port = 0

t.before(async () => {
  ({ child, port } = await startEchoExample())
})

t.teardown(() => { child.kill() })

conformanceCases(t, {
  async open (path) {
    const client = await WireClient.open(port, path)
    t.teardown(() => { client.destroy() })
    return client
  },
  async ended (t: Test, client) {
    await client.closedByServer()
    t.pass('server ended TCP')
  },
  // Each WebSocket has its own TCP connection: a failed one leaves nothing behind to check.
  async afterFailure () {}
})
