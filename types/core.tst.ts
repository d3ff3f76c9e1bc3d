import { connect } from 'node:net'
import { expect, test } from 'tstyche'
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import {
  Conn, CloseError, MessageReader, MessageWriter, PreparedMessage, Upgrader, dial, isCloseError, guardHandshakes,
  TextMessage, BinaryMessage, PingMessage, formatCloseMessage, ProtocolError, ReadLimitError, PROTOCOL_ERROR_CODES,
  type Message, type MessageHandler, type DataMessageType, type ProtocolErrorCode
} from '../lib/index.js'

declare const conn: Conn

test('readMessage resolves with a typed message', () => {
  expect(conn.readMessage()).type.toBe<Promise<Message>>()
  expect<Message['type']>().type.toBe<DataMessageType>()
  expect<Message['data']>().type.toBe<Buffer>()
})

test('onMessage takes a sync or async handler of typed messages', () => {
  expect(conn.onMessage((message) => { expect(message).type.toBe<Message>() })).type.toBe<Promise<void>>()
  expect(conn.onMessage(async ({ data }) => { await conn.writeMessage(BinaryMessage, data) }, { signal: AbortSignal.timeout(1) })).type.toBe<Promise<void>>()
  expect((message: Message) => message.data.length).type.toBeAssignableTo<MessageHandler>()
  expect(conn.onMessage(({ data }) => conn.send(data))).type.toBe<Promise<void>>()
  expect(conn.onMessage).type.not.toBeCallableWith((data: string) => data.length)
})

test('readJSON is generic and unknown by default', () => {
  expect(conn.readJSON()).type.toBe<Promise<unknown>>()
  expect(conn.readJSON<{ a: number }>()).type.toBe<Promise<{ a: number }>>()
})

test('writes accept strings and bytes but not other values', () => {
  expect(conn.writeMessage(TextMessage, 'hi')).type.toBe<Promise<void>>()
  expect(conn.writeMessage(BinaryMessage, new Uint8Array(2))).type.toBe<Promise<void>>()
  expect(conn.writeMessage).type.not.toBeCallableWith(TextMessage, 42)
  expect(conn.writeMessage).type.not.toBeCallableWith(7, 'x')
})

test('streaming reader and writer', () => {
  expect(conn.nextReader()).type.toBe<Promise<MessageReader>>()
  expect(conn.nextWriter(BinaryMessage)).type.toBe<Promise<MessageWriter>>()
  expect(conn.nextWriter).type.not.toBeCallableWith(PingMessage)
})

test('control frames take only control types', () => {
  expect(conn.writeControl(PingMessage, 'x')).type.toBe<Promise<void>>()
  expect(conn.writeControl).type.not.toBeCallableWith(TextMessage, 'x')
})

test('the connection is an async iterable of messages', () => {
  expect(conn).type.toBeAssignableTo<AsyncIterable<Message>>()
})

test('isCloseError narrows', () => {
  const error: unknown = new Error('x')
  if (isCloseError(error, 1000)) {
    expect(error).type.toBe<CloseError>()
    expect(error.code).type.toBe<number>()
  }
})

test('a protocol error names its rule with a code from a closed list', () => {
  const error = new ProtocolError('bad', 1002, 'ERR_WS_RESERVED_OPCODE')
  expect(error.code).type.toBe<ProtocolErrorCode>()
  expect<'ERR_WS_RESERVED_OPCODE'>().type.toBeAssignableTo<ProtocolErrorCode>()
  expect<'ERR_WS_PROTOCOL'>().type.not.toBeAssignableTo<ProtocolErrorCode>()
  expect(ProtocolError).type.not.toBeConstructableWith('bad', 1002)
  expect(ProtocolError).type.not.toBeConstructableWith('bad', 1002, 'ERR_WS_SOMETHING')
  expect(new ReadLimitError().code).type.toBe<'ERR_WS_READ_LIMIT' | 'ERR_WS_TOO_MANY_FRAGMENTS'>()
  expect(PROTOCOL_ERROR_CODES.ERR_WS_INVALID_UTF8.closeCode).type.toBe<1002 | 1007 | 1009>()
  expect(PROTOCOL_ERROR_CODES).type.not.toHaveProperty('ERR_WS_PROTOCOL')
})

test('factories', () => {
  expect(dial('ws://localhost')).type.toBe<Promise<Conn>>()
  expect(dial).type.toBeCallableWith('ws://localhost', { createConnection: (url: URL) => connect(Number(url.port), url.hostname) })
  expect(dial).type.not.toBeCallableWith('ws://localhost', { createConnection: () => 'not a stream' })
  expect(new Upgrader({ checkOrigin: () => true }).upgrade).type.toBeCallableWith({} as import('node:http').IncomingMessage, {} as import('node:net').Socket, Buffer.alloc(0))
  expect(new PreparedMessage(TextMessage, 'x')).type.toBe<PreparedMessage>()
  expect(formatCloseMessage(1000)).type.toBe<Buffer>()
})

test('guardHandshakes takes an http or https server and returns its disposer', () => {
  expect(guardHandshakes({} as import('node:http').Server, { headersTimeout: 5000 })).type.toBe<() => void>()
  expect(guardHandshakes({} as import('node:https').Server)).type.toBe<() => void>()
  expect(guardHandshakes).type.not.toBeCallableWith({} as import('node:net').Server)
})

test('WebSockets over HTTP/2: dial with http2, Upgrader.upgradeStream on an extended CONNECT', () => {
  expect(dial('wss://example.test/', { http2: true })).type.toBe<Promise<Conn>>()
  expect(dial).type.not.toBeCallableWith('wss://example.test/', { http2: 'yes' })
  expect(new Upgrader().upgradeStream({} as Http2ServerRequest)).type.toBe<Promise<Conn>>()
  expect(new Upgrader().upgradeStream).type.not.toBeCallableWith({} as IncomingMessage)
})
