// The README's "From @fastify/websocket" section: every row of its table has a code block, and
// each block, read from README.md as written, type-checks and runs against a listening server, checked with
// the `ws` client (or checks itself with assert). A block edited into something that no longer
// works, or a row without its block, fails here.
import t, { type Test } from 'tap'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runInThisContext } from 'node:vm'
import Fastify, { type FastifyInstance } from 'fastify'
import ts from 'typescript'
import WebSocket from 'ws'
import { BinaryMessage, TextMessage } from '../lib/protocol/constants.js'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { packageRoot } from './helpers/package.js'
import { closeOf, listen, messageOf, openWs, refusal } from './helpers/plugin.js'

const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8')
const start = readme.indexOf('### From @fastify/websocket')
const section = readme.slice(start, readme.indexOf('\n## ', start))
const rows = section.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| @fastify/websocket |') && !line.startsWith('| ---'))
const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!)

type Snippet = (app: FastifyInstance) => Promise<void>

/** Compiles a block into a function of `app`, with the names the README says are in scope. */
function compile (code: string): Snippet {
  const source = `(async (app, Fastify, assert, wsconn, TextMessage, BinaryMessage) => {\n${code}\n})`
  const { outputText } = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022 } })
  const run = runInThisContext(outputText) as (...scope: unknown[]) => Promise<void>
  return async (app) => { await run(app, Fastify, assert, fastifyWsconn, TextMessage, BinaryMessage) }
}

/** The first `count` messages a `ws` client receives, with their kind. */
function messages (ws: WebSocket, count: number): Promise<Array<{ text: string, isBinary: boolean }>> {
  const received: Array<{ text: string, isBinary: boolean }> = []
  return new Promise((resolve) => {
    ws.on('message', (data, isBinary) => {
      received.push({ text: data.toString(), isBinary })
      if (received.length === count) resolve(received)
    })
  })
}

interface Check {
  /** The block's first line. */
  comment: string
  /** A piece of the first column of the block's row. */
  row: string
  check: (t: Test, app: FastifyInstance, url: string) => Promise<void>
}

const checks: Check[] = [
  {
    comment: '// readLimit instead of { options: { maxPayload } }',
    row: 'maxPayload',
    async check (t, _app, url) {
      const small = await openWs(`${url}/small`)
      const closed = closeOf(small)
      small.send('x'.repeat(17))
      t.equal((await closed).code, 1009, 'the route limit applies')
    }
  },
  {
    comment: '// verifyClient: hooks run before the upgrade, and their reply is the refusal',
    row: 'verifyClient',
    async check (t, _app, url) {
      const origin = 'https://app.example'
      const anonymous = await refusal(openWs(`${url}/private`, { origin }))
      t.equal(anonymous.status, 401)
      t.same(JSON.parse(anonymous.body), { error: 'login first' })
      const elsewhere = await refusal(openWs(`${url}/private`, { origin: 'https://evil.example', headers: { authorization: 'Bearer secret' } }))
      t.equal(elsewhere.status, 403)
      const ws = await openWs(`${url}/private`, { origin, headers: { authorization: 'Bearer secret' } })
      t.equal(await messageOf(ws), 'welcome')
      ws.close()
    }
  },
  {
    comment: "// handleProtocols: the first subprotocol in the client's order that the route supports",
    row: 'handleProtocols',
    async check (t, _app, url) {
      const ws = await openWs(`${url}/chat`, {}, ['chat.v1', 'chat.v2'])
      t.equal(ws.protocol, 'chat.v1')
      t.equal(await messageOf(ws), 'speaking chat.v1')
      ws.close()
    }
  },
  {
    comment: '// perMessageDeflate',
    row: 'perMessageDeflate',
    async check (t, _app, url) {
      const ws = await openWs(`${url}/zip`, { perMessageDeflate: true })
      t.match(ws.extensions, /^permessage-deflate/)
      t.equal(await messageOf(ws), 'compressed: true')
      ws.close()
    }
  },
  {
    comment: "// socket.on('message', ...): one message per iteration, data always a Buffer",
    row: "socket.on('message'",
    async check (t, _app, url) {
      for (const path of ['/shape', '/shape-events']) {
        const ws = await openWs(`${url}${path}`)
        ws.send('héllo')
        t.equal(await messageOf(ws), 'text, 6 bytes', path)
        ws.send(Buffer.from([1, 2, 3]))
        t.equal(await messageOf(ws), 'binary, 3 bytes', path)
        ws.close()
      }
    }
  },
  {
    comment: '// socket.send(...): conn.send takes the type from the data, as ws does; writeMessage names it and waits',
    row: 'socket.send(data)',
    async check (t, _app, url) {
      const ws = new WebSocket(`${url}/send`)
      t.same(await messages(ws, 4), [
        { text: 'a string', isBinary: false },
        { text: '\u0001\u0002', isBinary: true },
        { text: 'as binary', isBinary: true },
        { text: '{"ok":true}', isBinary: false }
      ])
      ws.close()
    }
  },
  {
    comment: '// RawData: schemas validate what conn.readJSON() returns and shape what conn.writeJSON() sends',
    row: 'RawData',
    async check (t, _app, url) {
      const ws = await openWs(`${url}/double`)
      ws.send(JSON.stringify({ n: 21 }))
      t.same(JSON.parse(await messageOf(ws)), { double: 42 }, 'validated in, serialized out without secret')
      const invalid = await openWs(`${url}/double`)
      const closed = closeOf(invalid)
      invalid.send(JSON.stringify({ n: 'many' }))
      t.equal((await closed).code, 1007)
      ws.close()
    }
  },
  {
    comment: '// Returning from the handler does not close the connection',
    row: 'returning from the handler',
    async check (t, app, url) {
      const ws = await openWs(`${url}/stay`)
      t.equal(await messageOf(ws), 'welcome')
      // The handler has returned long ago; the connection is still listed and still delivers.
      t.equal(app.websocketConnections.size, 1)
      for (const conn of app.websocketConnections) await conn.writeMessage(TextMessage, 'later')
      t.equal(await messageOf(ws), 'later')
      t.equal(ws.readyState, WebSocket.OPEN)
      ws.close()
    }
  },
  {
    comment: '// websocketServer.clients',
    row: 'websocketServer.clients',
    async check (t, app, url) {
      const a = await openWs(`${url}/room`)
      const b = await openWs(`${url}/room`)
      const response = await app.inject({ method: 'POST', url: '/broadcast', headers: { 'content-type': 'text/plain' }, payload: 'to all' })
      t.same(response.json(), { sent: 2 })
      t.same([await messageOf(a), await messageOf(b)], ['to all', 'to all'])
      a.close()
      b.close()
    }
  },
  {
    comment: '// injectWS: no app.ready() first, and the connection is counted as soon as it resolves',
    row: 'injectWS',
    async check (t, app) {
      // The block asserts what it shows; here: it closed its connection.
      while (app.websocketConnections.size > 0) await new Promise((resolve) => setImmediate(resolve))
      t.pass('the block ran its own assertions')
    }
  },
  {
    comment: '// preClose: app.close() sends 1001 to every connection and waits up to closeGracePeriod for them',
    row: 'preClose',
    async check (t, app, url) {
      const ws = await openWs(`${url}/until-shutdown`)
      const closed = closeOf(ws)
      await app.close()
      t.same(await closed, { code: 1001, reason: 'server shutting down' })
    }
  },
  {
    comment: '// errorHandler: for what a handler throws; the connection closes with 1011 after it',
    row: 'errorHandler',
    async check (t, _app, url) {
      const ws = await openWs(`${url}/fails`)
      const closed = closeOf(ws)
      t.equal(await messageOf(ws), 'sorry: a bug')
      t.equal((await closed).code, 1011)
    }
  },
  {
    comment: '// A plain GET to a websocket-only route gets 426 (give the route a handler too to serve both)',
    row: 'plain GET',
    async check (t, app, url) {
      t.equal((await app.inject('/only-ws')).statusCode, 426)
      t.equal((await app.inject('/both')).body, 'plain')
      const ws = await openWs(`${url}/both`)
      t.equal((await closeOf(ws)).code, 1000, 'and upgrades reach wsHandler')
    }
  },
  {
    comment: '// An upgrade to a route that serves plain HTTP only gets 400, never a 101',
    row: 'upgrade to an HTTP route',
    async check (t, _app, url) {
      t.equal((await refusal(openWs(`${url}/only-http`))).status, 400)
    }
  },
  {
    comment: '// Heartbeat: a ping every pingInterval ms; a peer that has not answered by the next one is dropped',
    row: 'heartbeat',
    async check (t, _app, url) {
      const answering = await openWs(`${url}/watched`)
      await new Promise((resolve) => answering.once('ping', resolve))
      t.pass('pinged')
      const silent = await openWs(`${url}/watched`, { autoPong: false })
      t.equal((await closeOf(silent)).code, 1006, 'a peer that does not answer is dropped')
      t.equal(answering.readyState, WebSocket.OPEN, 'one that answers stays')
      answering.close()
    }
  }
]

t.test('every row of the table has its block, in order', async (t) => {
  t.equal(rows.length, checks.length, 'one check per row')
  t.equal(blocks.length, rows.length, 'one block per row')
  for (const [i, check] of checks.entries()) {
    t.ok(rows[i]?.split(' | ')[0]?.includes(check.row), `row ${i + 1} is the ${check.row} row`)
    t.equal(blocks[i]?.split('\n')[0], check.comment, `block ${i + 1} is its block`)
  }
})

t.test('the blocks compile as TypeScript against the package', async (t) => {
  // Each block as the body of a function, with the names the README puts in scope imported.
  const root = packageRoot()
  const file = join(root, 'test', 'migration-blocks.ts')
  const text = [
    "import Fastify from 'fastify'",
    "import assert from 'node:assert/strict'",
    "import wsconn, { BinaryMessage, TextMessage } from '../lib/index.js'",
    'void assert, BinaryMessage, TextMessage, wsconn',
    ...blocks.map((block, i) => `export async function block${i + 1} (): Promise<void> {\nconst app = Fastify()\n${block}}`)
  ].join('\n')
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    esModuleInterop: true,
    types: ['node'],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext
  }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, version, ...rest) => name === file ? ts.createSourceFile(name, text, version) : getSourceFile(name, version, ...rest)
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => name === file || fileExists(name)
  const program = ts.createProgram([file], options, host)
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
  t.same(problems, [], 'no type errors')
})

for (const [i, check] of checks.entries()) {
  t.test(check.comment.slice(3), async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await compile(blocks[i] ?? '')(app)
    const port = await listen(app)
    await check.check(t, app, `ws://127.0.0.1:${port}`)
  })
}
