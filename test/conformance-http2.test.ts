// The conformance cases (test/helpers/conformance-cases.ts) over HTTP/2: every WebSocket is an
// RFC 8441 extended CONNECT stream, opened by Node's own http2 client (none of lib/) on ONE
// cleartext (h2c) session to the h2c echo example (`npm run echo:http2`, the plugin on Fastify
// over HTTP/2) in its own process. Every case applies unchanged: RFC 8441 carries the same frames
// over a stream, so the same close codes are expected. Two things differ from TCP, and are checked:
// - after its close frame the server ends the stream (END_STREAM), never the session nor with a
//   reset; the client then ends its side and the stream closes with NO_ERROR;
// - after every connection the server failed (1002, 1007), the session is still open and still
//   carries a new WebSocket that echoes and closes cleanly.
import t, { type Test } from 'tap'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import { WireClient } from './helpers/wire-client.js'
import { startEchoExample } from './helpers/echo-example.js'
import { conformanceCases } from './helpers/conformance-cases.js'
import { connectH2, connectHeaders, openWireStream } from './helpers/h2-client.js'

let child: ChildProcess
let session: ClientHttp2Session
let authority = ''
const streams = new WeakMap<WireClient, ClientHttp2Stream>()

t.before(async () => {
  let port: number
  ({ child, port } = await startEchoExample({}, 'examples/echo-http2.ts'))
  authority = `127.0.0.1:${port}`
  session = await connectH2(`http://${authority}`)
})

t.teardown(() => {
  session?.destroy()
  child?.kill()
})

t.test('the server offers extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)', async (t) => {
  t.equal(session.remoteSettings.enableConnectProtocol, true)
})

async function open (path: string): Promise<WireClient> {
  const { stream, status } = await openWireStream(session, connectHeaders(path, authority))
  t.teardown(() => { stream.destroy() })
  if (status !== 200) throw new Error(`extended CONNECT to ${path} refused with ${status}`)
  const client = WireClient.over(stream)
  streams.set(client, stream)
  return client
}

async function ended (t: Test, client: WireClient): Promise<void> {
  await client.closedByServer()
  const stream = streams.get(client)!
  t.ok(stream.readableEnded && !stream.closed, 'server ended the stream (END_STREAM, no reset)')
  stream.end()
  if (!stream.closed) await once(stream, 'close')
  t.equal(stream.rstCode, constants.NGHTTP2_NO_ERROR, 'the stream closed without error once the client ended its side')
}

conformanceCases(t, {
  open,
  ended,
  async afterFailure (t: Test) {
    t.equal(session.closed || session.destroyed, false, 'the session is still open')
    const next = await open('/echo')
    next.send({ opcode: 1, payload: 'still here' })
    const echoed = await next.next()
    t.equal(echoed?.payload.toString(), 'still here', 'and carries a new WebSocket')
    next.send({ opcode: 8, payload: Buffer.from([0x03, 0xe8]) })
    const close = await next.next()
    t.equal(close?.payload.readUInt16BE(0), 1000, 'which closes cleanly')
    await ended(t, next)
  }
})
