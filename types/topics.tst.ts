import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import { createClient, createCluster } from 'redis'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  fastifyWsconn, Hub, PreparedMessage, TextMessage, Upgrader, type Conn, type PublishResult, type SlowConsumerPolicy
} from '../lib/index.js'

declare const conn: Conn

test('a connection subscribes, publishes and sends', () => {
  expect(conn.subscribe('room')).type.toBe<boolean>()
  expect(conn.unsubscribe('room')).type.toBe<boolean>()
  expect(conn.isSubscribed('room')).type.toBe<boolean>()
  expect(conn.topics).type.toBe<string[]>()
  expect(conn.publish('room', 'hi', { except: conn })).type.toBe<Promise<PublishResult>>()
  expect(conn.send('text')).type.toBe<boolean>()
  expect(conn.send(new Uint8Array(1))).type.toBe<boolean>()
  expect(conn.send(new PreparedMessage(TextMessage, 'x'))).type.toBe<boolean>()
  expect(conn.send).type.not.toBeCallableWith(42)
  expect(conn.subscribe).type.not.toBeCallableWith(1)
  expect(conn.droppedMessages).type.toBe<number>()
})

test('app.websocketPublish accepts the documented types', () => {
  const app = Fastify()
  expect(app.websocketPublish('t', 'text')).type.toBe<Promise<PublishResult>>()
  expect(app.websocketPublish('t', Buffer.from('x'))).type.toBe<Promise<PublishResult>>()
  expect(app.websocketPublish('t', new Float32Array(2))).type.toBe<Promise<PublishResult>>()
  expect(app.websocketPublish('t', new ArrayBuffer(2))).type.toBe<Promise<PublishResult>>()
  expect(app.websocketPublish('t', new PreparedMessage(TextMessage, 'x'))).type.toBe<Promise<PublishResult>>()
  expect(app.websocketPublish).type.not.toBeCallableWith('t', { a: 1 })
  expect(app.websocketPublish).type.not.toBeCallableWith(1, 'x')
  expect(app.websocketPublishJSON('t', { a: 1 }, (v) => JSON.stringify(v.a))).type.toBe<Promise<PublishResult>>()
  expect(app.websocketSubscriberCount('t')).type.toBe<number>()
  expect(app.websocketHub).type.toBe<Hub>()
})

test('the handler connection subscribes, and publishJSON follows schema.outgoing', () => {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  app.get('/chat', {
    websocket: true,
    schema: { outgoing: Type.Object({ text: Type.String() }) }
  }, async (conn) => {
    expect(conn.subscribe('room')).type.toBe<boolean>()
    expect(conn.publishJSON('room', { text: 'hi' })).type.toBe<Promise<PublishResult>>()
    expect(conn.publishJSON).type.not.toBeCallableWith('room', { text: 1 })
  })
})

test('slow-consumer options', () => {
  const app = Fastify()
  expect(app.register(fastifyWsconn, { maxBufferedAmount: 1 << 20, slowConsumerPolicy: 'drop' })).type.not.toRaiseError()
  expect(app.register(fastifyWsconn, { slowConsumerPolicy: 'block' })).type.toRaiseError('"block"')
  expect<SlowConsumerPolicy>().type.toBe<'close' | 'drop'>()
  expect(new Upgrader({ hub: new Hub(), maxBufferedAmount: 0 })).type.toBe<Upgrader>()
})

test('pubsub takes one Redis, or a Redis Cluster as createCluster() takes it or as a cluster client', () => {
  type RedisOption = NonNullable<Parameters<typeof fastifyWsconn>[1]['pubsub']>['redis']
  expect({ url: 'redis://127.0.0.1:6379' }).type.toBeAssignableTo<RedisOption>()
  expect({ client: createClient() }).type.toBeAssignableTo<RedisOption>()
  expect({ cluster: { rootNodes: [{ url: 'redis://10.0.0.1:7000' }], defaults: { password: 'pw' } }, channelPrefix: 'app:' }).type.toBeAssignableTo<RedisOption>()
  expect({ cluster: createCluster({ rootNodes: [{ url: 'redis://10.0.0.1:7000' }] }) }).type.toBeAssignableTo<RedisOption>()
  expect({ cluster: { rootNodes: 'redis://10.0.0.1:7000' } }).type.not.toBeAssignableTo<RedisOption>()
})
