// The package's public entry: every documented export is there with the right kind and value, the
// default export is the Fastify plugin, and package.json points at the files the build produces.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer, connect, type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import { join, resolve } from 'node:path'
import Fastify from 'fastify'
import ts from 'typescript'
import wsconn, * as api from '../lib/index.js'
import { packageRoot } from './helpers/package.js'
import type {
  BufferPool, ConnOptions, DialOptions, Message, MessageType, Payload, UpgraderOptions, WsconnPluginOptions
} from '../lib/index.js'

type Teardown = { teardown: (fn: () => unknown) => void }

/** Every run-time export of the entry point and what kind of value it is. */
const EXPECTED_KINDS: Record<string, 'class' | 'function' | 'number' | 'object'> = {
  TextMessage: 'number',
  BinaryMessage: 'number',
  CloseMessage: 'number',
  PingMessage: 'number',
  PongMessage: 'number',
  CloseNormalClosure: 'number',
  CloseGoingAway: 'number',
  CloseProtocolError: 'number',
  CloseUnsupportedData: 'number',
  CloseNoStatusReceived: 'number',
  CloseAbnormalClosure: 'number',
  CloseInvalidFramePayloadData: 'number',
  ClosePolicyViolation: 'number',
  CloseMessageTooBig: 'number',
  CloseMandatoryExtension: 'number',
  CloseInternalServerErr: 'number',
  CloseServiceRestart: 'number',
  CloseTryAgainLater: 'number',
  CloseTLSHandshake: 'number',
  CloseError: 'class',
  ProtocolError: 'class',
  ReadLimitError: 'class',
  TimeoutError: 'class',
  CloseSentError: 'class',
  WriteClosedError: 'class',
  UsageError: 'class',
  HandshakeError: 'class',
  isCloseError: 'function',
  isUnexpectedCloseError: 'function',
  PROTOCOL_ERROR_CODES: 'object',
  formatCloseMessage: 'function',
  isValidReceivedCloseCode: 'function',
  closeCodeLabel: 'function',
  Conn: 'class',
  MessageReader: 'class',
  MessageWriter: 'class',
  PreparedMessage: 'class',
  DEFAULT_READ_LIMIT: 'number',
  DEFAULT_MAX_FRAGMENTS: 'number',
  DEFAULT_READ_BUFFER_SIZE: 'number',
  DEFAULT_WRITE_BUFFER_SIZE: 'number',
  DEFAULT_CLOSE_TIMEOUT: 'number',
  DEFAULT_MAX_BUFFERED_AMOUNT: 'number',
  Hub: 'class',
  MAX_TOPIC_LENGTH: 'number',
  FANOUT_SLICE: 'number',
  PublishError: 'class',
  RedisBus: 'class',
  SimpleBufferPool: 'class',
  isWebSocketUpgrade: 'function',
  parseSubprotocols: 'function',
  checkSameOrigin: 'function',
  computeAcceptKey: 'function',
  Upgrader: 'class',
  DEFAULT_UPGRADE_TIMEOUT: 'number',
  guardHandshakes: 'function',
  DEFAULT_HEADERS_TIMEOUT: 'number',
  Dialer: 'class',
  dial: 'function',
  DialAbortError: 'class',
  DEFAULT_DIAL_TIMEOUT: 'number',
  fastifyWsconn: 'function',
  MessageValidationError: 'class',
  DEFAULT_PLUGIN_READ_LIMIT: 'number',
  DEFAULT_CLOSE_GRACE_PERIOD: 'number',
  default: 'function'
}

/** Message types and close codes as RFC 6455 (§5.2, §7.4.1) and the IANA registry define them. */
const RFC_VALUES: Record<string, number> = {
  TextMessage: 1,
  BinaryMessage: 2,
  CloseMessage: 8,
  PingMessage: 9,
  PongMessage: 10,
  CloseNormalClosure: 1000,
  CloseGoingAway: 1001,
  CloseProtocolError: 1002,
  CloseUnsupportedData: 1003,
  CloseNoStatusReceived: 1005,
  CloseAbnormalClosure: 1006,
  CloseInvalidFramePayloadData: 1007,
  ClosePolicyViolation: 1008,
  CloseMessageTooBig: 1009,
  CloseMandatoryExtension: 1010,
  CloseInternalServerErr: 1011,
  CloseServiceRestart: 1012,
  CloseTryAgainLater: 1013,
  CloseTLSHandshake: 1015
}

/** Defaults as the README documents them. */
const DOCUMENTED_DEFAULTS: Record<string, number> = {
  DEFAULT_READ_LIMIT: 16 * 1024 * 1024,
  DEFAULT_MAX_FRAGMENTS: 131072,
  DEFAULT_READ_BUFFER_SIZE: 1024 * 1024,
  DEFAULT_WRITE_BUFFER_SIZE: 4096,
  DEFAULT_CLOSE_TIMEOUT: 5000,
  DEFAULT_MAX_BUFFERED_AMOUNT: 4 * 1024 * 1024,
  MAX_TOPIC_LENGTH: 1024,
  FANOUT_SLICE: 1024,
  DEFAULT_UPGRADE_TIMEOUT: 10_000,
  DEFAULT_HEADERS_TIMEOUT: 10_000,
  DEFAULT_DIAL_TIMEOUT: 45_000,
  DEFAULT_PLUGIN_READ_LIMIT: 1024 * 1024,
  DEFAULT_CLOSE_GRACE_PERIOD: 5000
}

async function listen (t: Teardown, server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as AddressInfo).port
}

/** Two connected loopback TCP sockets. */
async function tcpPair (t: Teardown): Promise<[Socket, Socket]> {
  const listener = createNetServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const accepted = once(listener, 'connection')
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1')
  const [server] = await accepted as [Socket]
  await once(client, 'connect').catch(() => {})
  t.teardown(() => {
    server.destroy()
    client.destroy()
    listener.close()
  })
  return [server, client]
}

t.test('the entry exports exactly the documented names, each of the right kind', async (t) => {
  const exported = api as unknown as Record<string, unknown>
  // The entry is the plugin function carrying the exports (see the end of lib/index.ts): tsc's
  // namespace-import helper also copies a function's own `length` and `name`.
  const names = Object.keys(exported).filter((name) => !['__esModule', 'length', 'name'].includes(name))
  t.same(names.sort(), Object.keys(EXPECTED_KINDS).sort(),
    'no export missing, none undocumented')
  for (const [name, kind] of Object.entries(EXPECTED_KINDS)) {
    const value = exported[name]
    if (kind === 'number' || kind === 'object') {
      t.equal(typeof value, kind, `${name} is a ${kind}`)
    } else {
      t.equal(typeof value, 'function', `${name} is a function`)
      // tsc targets ES2022, so a class is still a `class` in the emitted source.
      const isClass = /^class\b/.test(Function.prototype.toString.call(value))
      t.equal(isClass, kind === 'class', `${name} is ${kind === 'class' ? 'a class' : 'a plain function'}`)
    }
  }
})

t.test('message types and close codes have their RFC 6455 values', async (t) => {
  const exported = api as unknown as Record<string, unknown>
  for (const [name, value] of Object.entries(RFC_VALUES)) t.equal(exported[name], value, name)
  for (const [name, value] of Object.entries(DOCUMENTED_DEFAULTS)) t.equal(exported[name], value, name)
})

t.test('error classes and helpers', async (t) => {
  const close = new api.CloseError(api.CloseGoingAway, 'bye')
  t.ok(close instanceof Error)
  t.same({ name: close.name, code: close.code, text: close.text }, { name: 'CloseError', code: 1001, text: 'bye' })
  t.match(close.message, /1001 \(going away\): bye/)

  const protocol = new api.ProtocolError('bad frame', api.CloseProtocolError, 'ERR_WS_RESERVED_OPCODE')
  t.same({ name: protocol.name, closeCode: protocol.closeCode, code: protocol.code }, { name: 'ProtocolError', closeCode: 1002, code: 'ERR_WS_RESERVED_OPCODE' })
  const limit = new api.ReadLimitError()
  t.ok(limit instanceof api.ProtocolError, 'ReadLimitError is a ProtocolError')
  t.same({ closeCode: limit.closeCode, code: limit.code }, { closeCode: 1009, code: 'ERR_WS_READ_LIMIT' })
  t.equal(new api.TimeoutError('late').timeout, true)
  t.equal(new api.CloseSentError().code, 'ERR_WS_CLOSE_SENT')
  t.equal(new api.WriteClosedError().code, 'ERR_WS_WRITE_CLOSED')
  const usage = new api.UsageError('bad type')
  t.ok(usage instanceof TypeError, 'UsageError is a TypeError')
  const handshake = new api.HandshakeError('refused', 403, { 'x-why': 'origin' }, Buffer.from('no'))
  t.same({ status: handshake.status, why: handshake.headers['x-why'], body: handshake.body.toString() }, { status: 403, why: 'origin', body: 'no' })
  const aborted = new api.DialAbortError('gave up')
  t.same({ name: aborted.name, code: aborted.code, cause: aborted.cause }, { name: 'AbortError', code: 'ABORT_ERR', cause: 'gave up' })
  const invalid = new api.MessageValidationError('message is not JSON')
  t.same({ code: invalid.code, closeCode: invalid.closeCode, reason: invalid.reason }, { code: 'ERR_WS_INVALID_MESSAGE', closeCode: 1007, reason: 'message is not JSON' })

  const wrapped = new Error('handler failed', { cause: new api.CloseError(api.CloseAbnormalClosure, '') })
  t.equal(api.isCloseError(close, api.CloseGoingAway), true)
  t.equal(api.isCloseError(close, api.CloseNormalClosure), false)
  t.equal(api.isUnexpectedCloseError(wrapped, api.CloseNormalClosure, api.CloseGoingAway), true, 'a cause is followed')
  t.equal(api.isUnexpectedCloseError(protocol), false, 'not a close error')

  t.same([...api.formatCloseMessage(api.CloseNormalClosure, 'ok')], [0x03, 0xe8, 0x6f, 0x6b])
  t.throws(() => api.formatCloseMessage(api.CloseAbnormalClosure), RangeError, '1006 may not be sent')
  t.equal(api.isValidReceivedCloseCode(api.CloseNormalClosure), true)
  t.equal(api.isValidReceivedCloseCode(api.CloseNoStatusReceived), false)
  t.equal(api.closeCodeLabel(api.CloseMessageTooBig), 'message too big')
})

/** Every protocol error code, the close code it sends and its class: the stable list users match on. */
const PROTOCOL_CODES: Record<string, [number, string]> = {
  ERR_WS_RESERVED_BITS: [1002, 'ProtocolError'],
  ERR_WS_UNEXPECTED_RSV1: [1002, 'ProtocolError'],
  ERR_WS_RESERVED_OPCODE: [1002, 'ProtocolError'],
  ERR_WS_FRAGMENTED_CONTROL: [1002, 'ProtocolError'],
  ERR_WS_CONTROL_TOO_LONG: [1002, 'ProtocolError'],
  ERR_WS_UNEXPECTED_CONTINUATION: [1002, 'ProtocolError'],
  ERR_WS_EXPECTED_CONTINUATION: [1002, 'ProtocolError'],
  ERR_WS_EXPECTED_MASK: [1002, 'ProtocolError'],
  ERR_WS_UNEXPECTED_MASK: [1002, 'ProtocolError'],
  ERR_WS_INVALID_LENGTH: [1002, 'ProtocolError'],
  ERR_WS_READ_LIMIT: [1009, 'ReadLimitError'],
  ERR_WS_TOO_MANY_FRAGMENTS: [1009, 'ReadLimitError'],
  ERR_WS_INVALID_UTF8: [1007, 'ProtocolError'],
  ERR_WS_INVALID_CLOSE_PAYLOAD: [1002, 'ProtocolError'],
  ERR_WS_INVALID_CLOSE_CODE: [1002, 'ProtocolError'],
  ERR_WS_INVALID_COMPRESSED_DATA: [1007, 'ProtocolError']
}

/** The codes of the other errors and their classes, the plugin's HTTP refusals included. */
const OTHER_CODES: Record<string, string> = {
  FST_WS_UPGRADE_REQUIRED: 'FastifyError',
  FST_WS_NOT_WEBSOCKET_ROUTE: 'FastifyError',
  FST_WS_ROUTE_DECLARED_TOO_EARLY: 'FastifyError',
  ERR_WS_TIMEOUT: 'TimeoutError',
  ERR_WS_CLOSE_SENT: 'CloseSentError',
  ERR_WS_WRITE_CLOSED: 'WriteClosedError',
  ERR_WS_USAGE: 'UsageError',
  ERR_WS_HANDSHAKE: 'HandshakeError',
  ERR_WS_INVALID_MESSAGE: 'MessageValidationError',
  ERR_WS_PUBLISH: 'PublishError'
}

t.test('every error code is listed once, with its close code, in PROTOCOL_ERROR_CODES and the README', async (t) => {
  const listed = api.PROTOCOL_ERROR_CODES
  t.same(Object.fromEntries(Object.entries(listed).map(([code, info]) => [code, info.closeCode])),
    Object.fromEntries(Object.entries(PROTOCOL_CODES).map(([code, [closeCode]]) => [code, closeCode])), 'the protocol codes and their close codes')
  t.ok(Object.isFrozen(listed) && Object.values(listed).every((info) => Object.isFrozen(info)), 'frozen, entries too')

  const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Error codes\n'))
  const rows = new Map<string, string[]>()
  for (const line of section.slice(0, section.indexOf('\n## ', 1)).split('\n')) {
    const cells = line.split('|').slice(1, -1).map((cell) => cell.trim().replaceAll('`', ''))
    if (/^(ERR|FST)_WS_/.test(cells[0] ?? '')) {
      t.notOk(rows.has(cells[0]!), `${cells[0]} has one row`)
      rows.set(cells[0]!, cells)
    }
  }
  t.same([...rows.keys()].sort(), [...Object.keys(PROTOCOL_CODES), ...Object.keys(OTHER_CODES)].sort(), 'a row for every code and none other')
  for (const [code, [closeCode, name]] of Object.entries(PROTOCOL_CODES)) {
    t.same(rows.get(code)?.slice(1), [listed[code as keyof typeof listed].rule, String(closeCode), name], `${code}: the rule as PROTOCOL_ERROR_CODES says it, close code and class`)
  }
  for (const [code, name] of Object.entries(OTHER_CODES)) t.equal(rows.get(code)?.[3], name, `${code}: class`)
  t.equal(new api.TimeoutError('late').code, 'ERR_WS_TIMEOUT')
  t.equal(new api.HandshakeError('refused', 403).code, 'ERR_WS_HANDSHAKE')
  t.equal(new api.UsageError('bad').code, 'ERR_WS_USAGE')
})

t.test('handshake helpers', async (t) => {
  // The example of RFC 6455 §1.3.
  t.equal(api.computeAcceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  t.equal(api.isWebSocketUpgrade({ headers: { connection: 'keep-alive, Upgrade', upgrade: 'WebSocket' } }), true)
  t.equal(api.isWebSocketUpgrade({ headers: { connection: 'keep-alive' } }), false)
  t.same(api.parseSubprotocols('chat, , json'), ['chat', 'json'])
  t.equal(api.checkSameOrigin({ headers: { origin: 'http://a.test', host: 'a.test' } }), true)
  t.equal(api.checkSameOrigin({ headers: { origin: 'http://evil.test', host: 'a.test' } }), false)
})

t.test('Conn, MessageReader, MessageWriter, PreparedMessage and SimpleBufferPool over TCP', async (t) => {
  const [serverSocket, clientSocket] = await tcpPair(t)
  const pool: BufferPool = new api.SimpleBufferPool(16)
  const clientOptions: ConnOptions = { writeBufferSize: 16, writeBufferPool: pool }
  const server = new api.Conn(serverSocket, { isServer: true })
  const client = new api.Conn(clientSocket, { isServer: false, options: clientOptions })
  t.teardown(() => { server.terminate(); client.terminate() })

  const writer = await client.nextWriter(api.TextMessage)
  t.ok(writer instanceof api.MessageWriter, 'nextWriter gives a MessageWriter')
  await writer.write('streamed in fragments of 16 bytes')
  await writer.close()
  t.equal((pool as InstanceType<typeof api.SimpleBufferPool>).idleCount, 1, 'the writer returned its buffer to the pool')
  const reader = await server.nextReader()
  t.ok(reader instanceof api.MessageReader, 'nextReader gives a MessageReader')
  t.equal(reader.type, api.TextMessage)
  t.equal((await reader.readAll()).toString(), 'streamed in fragments of 16 bytes')

  const data: Payload = Buffer.from('to everyone')
  const prepared = new api.PreparedMessage(api.BinaryMessage, data)
  await server.writePreparedMessage(prepared)
  const received: Message = await client.readMessage()
  const type: MessageType = received.type
  t.same({ type, data: received.data.toString() }, { type: api.BinaryMessage, data: 'to everyone' })

  await client.close(api.CloseNormalClosure, 'done')
  const failure = await server.readMessage().catch((err: unknown) => err)
  t.ok(api.isCloseError(failure, api.CloseNormalClosure), 'the server read the close')
})

t.test('Upgrader and dial: the core API example', async (t) => {
  const upgraderOptions: UpgraderOptions = { subprotocols: ['echo'] }
  const upgrader = new api.Upgrader(upgraderOptions)
  const server = createServer()
  server.on('upgrade', (req, socket, head) => {
    upgrader.upgrade(req, socket, head).then(async (conn) => {
      for await (const { type, data } of conn) await conn.writeMessage(type, data)
    }).catch(() => {})
  })
  const port = await listen(t, server)

  const dialOptions: DialOptions = { subprotocols: ['echo'] }
  const client = await api.dial(`ws://127.0.0.1:${port}/`, dialOptions)
  t.equal(client.subprotocol, 'echo')
  await client.writeMessage(api.TextMessage, 'hello')
  t.equal((await client.readMessage()).data.toString(), 'hello')
  await client.close()

  const dialer = new api.Dialer({ handshakeTimeout: 5000 })
  const second = await dialer.dial(`ws://127.0.0.1:${port}/`)
  await second.writeJSON({ n: 1 })
  t.same(await second.readJSON(), { n: 1 })
  await second.close()

  const refused = await api.dial(`ws://127.0.0.1:${port}/`, { origin: 'http://elsewhere.test' }).catch((err: unknown) => err)
  t.ok(refused instanceof api.HandshakeError, 'a cross-origin dial is refused')
  t.equal((refused as InstanceType<typeof api.HandshakeError>).status, 403)
  const aborted = await api.dial(`ws://127.0.0.1:${port}/`, { signal: AbortSignal.abort('stop') }).catch((err: unknown) => err)
  t.ok(aborted instanceof api.DialAbortError)
})

t.test('the default export is the Fastify plugin', async (t) => {
  t.equal(wsconn, api.fastifyWsconn, 'default and named export are the same plugin')
  const meta = wsconn as unknown as Record<symbol, unknown>
  t.equal(meta[Symbol.for('skip-override')], true, 'wrapped by fastify-plugin, so its decorators are visible to the app')
  t.equal(meta[Symbol.for('fastify.display-name')], 'fastify-wsconn')

  const app = Fastify()
  t.teardown(() => app.close())
  const options: WsconnPluginOptions = { readLimit: 1024 }
  await app.register(wsconn, options)
  t.ok(app.hasDecorator('websocketConnections'))
  t.ok(app.hasDecorator('injectWS'))
  app.get('/echo', { websocket: true }, async (conn) => {
    for await (const { type, data } of conn) await conn.writeMessage(type, data)
  })
  const port = await app.listen({ port: 0, host: '127.0.0.1' }).then(() => (app.server.address() as AddressInfo).port)

  const conn = await api.dial(`ws://127.0.0.1:${port}/echo`)
  t.equal(app.websocketConnections.size, 1)
  await conn.writeMessage(api.TextMessage, 'through fastify')
  t.equal((await conn.readMessage()).data.toString(), 'through fastify')
  await conn.writeMessage(api.BinaryMessage, Buffer.alloc(1025))
  const failure = await conn.readMessage().catch((err: unknown) => err)
  t.ok(api.isCloseError(failure, api.CloseMessageTooBig), 'the plugin option readLimit applies')
})

t.test('CommonJS: require() gives the plugin itself, carrying every export', async (t) => {
  // What `require('fastify-wsconn')` returns, and an ES module's default import of it.
  const required = require('../lib/index.js') as typeof wsconn & Record<string, unknown>
  t.equal(required, wsconn, 'module.exports is the plugin')
  t.equal(required['default'], required, 'and its own default')
  t.equal(required['fastifyWsconn'], required)
  for (const name of Object.keys(EXPECTED_KINDS)) t.equal(required[name], (api as unknown as Record<string, unknown>)[name], `${name} is a property`)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(required)
  t.ok(app.hasDecorator('injectWS'))
  app.get('/ping', { websocket: true }, async (conn) => { await conn.writeMessage(api.TextMessage, 'pong') })
  const conn = await app.injectWS('/ping')
  t.equal((await conn.readMessage()).data.toString(), 'pong')
  conn.terminate()
})

t.test('package.json main, types and exports name the files tsconfig.build.json emits', async (t) => {
  const root = packageRoot()
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    main: string
    types: string
    type: string
    files: string[]
    exports: Record<string, { types: string, default: string } | string>
  }
  const configPath = join(root, 'tsconfig.build.json')
  const parsed = ts.getParsedCommandLineOfConfigFile(configPath, undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')) }
  })
  if (parsed === undefined) throw new Error('tsconfig.build.json could not be read')
  t.same(parsed.errors, [], 'tsconfig.build.json has no errors')
  t.equal(parsed.options.noEmit, false, 'the build emits')
  t.equal(parsed.options.declaration, true, 'the build emits declarations')
  t.equal(parsed.options.module, ts.ModuleKind.NodeNext)
  t.equal(pkg.type, 'commonjs', 'nodenext emits CommonJS for a commonjs package')

  const entry = resolve(root, 'lib', 'index.ts')
  t.ok(parsed.fileNames.map((f) => resolve(f)).includes(entry), 'lib/index.ts is part of the build')
  const outputs = ts.getOutputFileNames(parsed, entry, false).map((f) => resolve(f))
  const js = resolve(root, pkg.main)
  const dts = resolve(root, pkg.types)
  t.ok(outputs.includes(js), `main ${pkg.main} is emitted for lib/index.ts`)
  // The declarations of that CommonJS shape are written by hand and copied by the build script.
  t.equal(dts, resolve(parsed.options.outDir ?? '', 'entry.d.ts'), `types ${pkg.types} is lib/entry.d.ts, copied`)
  t.ok(existsSync(join(root, 'lib', 'entry.d.ts')), 'lib/entry.d.ts exists')
  const dot = pkg.exports['.']
  if (typeof dot !== 'object') throw new Error('exports["."] must have conditions')
  t.same(Object.keys(dot), ['types', 'default'], 'types comes first, as TypeScript requires')
  t.equal(resolve(root, dot.default), js, 'exports["."].default is main')
  t.equal(resolve(root, dot.types), dts, 'exports["."].types is types')
  const outDir = resolve(parsed.options.outDir ?? '')
  t.ok(pkg.files.some((f) => resolve(root, f) === outDir), `files publishes the outDir ${outDir}`)
})
