import { expect, test } from 'tstyche'
import Fastify, {
  type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyTypeProvider, type RawReplyDefaultExpression,
  type RawRequestDefaultExpression, type RawServerDefault
} from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Conn } from '../lib/conn/conn.js'
import fastifyWsconnDefault, {
  fastifyWsconn, MessageValidationError, type RouteWebsocketOptions, type TypedConn, type WsconnPluginOptions
} from '../lib/plugin/index.js'

const Incoming = Type.Object({ text: Type.String(), room: Type.Optional(Type.String()) })
const Outgoing = Type.Object({ from: Type.String(), text: Type.String() })
const Query = Type.Object({ nick: Type.String() })

test('the plugin and its options', () => {
  expect(fastifyWsconn).type.toBe<FastifyPluginAsync<WsconnPluginOptions>>()
  expect(fastifyWsconnDefault).type.toBe<FastifyPluginAsync<WsconnPluginOptions>>()
  const app = Fastify()
  expect(app.register(fastifyWsconn, { readLimit: 1024, pingInterval: 30_000, checkOrigin: ['https://a.example'], closeGracePeriod: 1000, headersTimeout: 5000 })).type.not.toRaiseError()
  expect(app.register(fastifyWsconn, { checkOrigin: (req) => req.headers.origin === undefined })).type.not.toRaiseError()
  expect(app.register(fastifyWsconn, { onInvalidMessage: 'reject', compression: { threshold: 1024 } })).type.not.toRaiseError()
  expect(app.register(fastifyWsconn, { onInvalidMessage: 'ignore' })).type.toRaiseError('"ignore"')
  expect(app.register(fastifyWsconn, { readLimit: '1MB' })).type.toRaiseError("Type 'string' is not assignable to type 'number'")
  expect(app.register(fastifyWsconn, {
    errorHandler (error, conn, request) {
      expect(this).type.toBe<FastifyInstance>()
      expect(error).type.toBe<Error>()
      expect(conn).type.toBe<Conn>()
      expect(request.ws).type.toBe<boolean>()
    }
  })).type.not.toRaiseError()
})

test('decorators', () => {
  const app = Fastify()
  expect(app.injectWS('/ws', { headers: { authorization: 'x' }, subprotocols: ['chat'], readLimit: 10 })).type.toBe<Promise<Conn>>()
  expect(app.injectWS()).type.toBe<Promise<Conn>>()
  expect(app.injectWS).type.toBeCallableWith('/zip', { compression: { level: 1 }, origin: 'http://localhost', handshakeTimeout: 1000 })
  // The transport is injectWS's own.
  expect(app.injectWS).type.not.toBeCallableWith('/ws', { createConnection: () => process.stdin })
  expect(app.injectWS).type.not.toBeCallableWith('/ws', { tls: {} })
  expect(app.websocketConnections).type.toBe<ReadonlySet<Conn>>()
  expect(app.websocketConnections).type.not.toHaveProperty('add')
  app.addHook('onRequest', async (request) => {
    expect(request.ws).type.toBe<boolean>()
  })
})

test('without a type provider, messages are unknown', () => {
  const app = Fastify()
  app.get('/ws', { websocket: true, schema: { incoming: Incoming, outgoing: Outgoing } }, async (conn, request) => {
    expect(conn).type.toBe<TypedConn<unknown, unknown>>()
    expect(conn.readJSON()).type.toBe<Promise<unknown>>()
    expect(conn.writeJSON).type.toBeCallableWith({ anything: true })
    expect(request.ws).type.toBe<boolean>()
  })
})

test('with the TypeBox provider, readJSON and writeJSON follow schema.incoming and schema.outgoing', () => {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  app.get('/chat', {
    websocket: true,
    schema: { incoming: Incoming, outgoing: Outgoing, querystring: Query }
  }, async function (conn, request) {
    expect(conn.readJSON()).type.toBe<Promise<{ text: string, room?: string }>>()
    expect(conn.writeJSON).type.toBeCallableWith({ from: 'server', text: 'hi' })
    expect(conn.writeJSON).type.not.toBeCallableWith({ from: 'server' })
    expect(conn.writeJSON).type.not.toBeCallableWith({ from: 'server', text: 42 })
    expect(request.query).type.toBe<{ nick: string }>()
    expect(this).type.toBe<FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>>()
  })
})

test('wrong message usage is a compile error', () => {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  expect(app.get('/chat', { websocket: true, schema: { outgoing: Outgoing } }, async (conn) => {
    await conn.writeJSON({ from: 'server', txt: 'typo' })
  })).type.toRaiseError("'txt' does not exist in type")
  expect(app.get('/chat', { websocket: true, schema: { incoming: Incoming } }, async (conn) => {
    const message = await conn.readJSON()
    message.text.toFixed()
  })).type.toRaiseError("Property 'toFixed' does not exist on type 'string'")
})

test('the options-object handler and the full route() form are typed the same way', () => {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  app.get('/chat', {
    websocket: { readLimit: 4096 },
    schema: { incoming: Incoming },
    handler: async (conn) => {
      expect(conn.readJSON()).type.toBe<Promise<Static<typeof Incoming>>>()
    }
  })
  app.route({
    method: 'GET',
    url: '/chat',
    websocket: true,
    schema: { incoming: Incoming, outgoing: Outgoing, params: Type.Object({ id: Type.Integer() }) },
    handler: async (conn, request) => {
      expect(conn.readJSON()).type.toBe<Promise<Static<typeof Incoming>>>()
      expect(conn.writeJSON).type.not.toBeCallableWith({ text: 'no sender' })
      expect(request.params.id).type.toBe<number>()
    }
  })
})

test('handler and wsHandler on one URL', () => {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  app.route({
    method: 'GET',
    url: '/both',
    schema: { incoming: Incoming },
    handler: async (request, reply) => {
      expect(request.ws).type.toBe<boolean>()
      return await reply.send('plain')
    },
    wsHandler: async (conn) => {
      expect(conn.readJSON()).type.toBe<Promise<Static<typeof Incoming>>>()
    }
  })
  app.get('/short', { wsHandler: async (conn) => { expect(conn).type.toBeAssignableTo<Conn>() } }, async () => 'plain')
})

test('plain routes keep their HTTP handler types', () => {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  app.get('/http', { schema: { querystring: Query } }, async (request, reply) => {
    expect(request.query.nick).type.toBe<string>()
    expect(reply.send).type.toBeCallableWith('x')
  })
  app.get('/http2', { websocket: false }, async (request) => {
    expect(request.ws).type.toBe<boolean>()
  })
})

test('route generics type messages without a provider', () => {
  const app = Fastify()
  app.get<{ Incoming: Static<typeof Incoming>, Outgoing: Static<typeof Outgoing> }>('/generic', { websocket: true }, async (conn) => {
    expect(conn.readJSON()).type.toBe<Promise<Static<typeof Incoming>>>()
    expect(conn.writeJSON).type.toBeCallableWith({ from: 'a', text: 'b' })
    expect(conn.writeJSON).type.not.toBeCallableWith({ from: 'a' })
  })
})

test('route websocket options are checked', () => {
  const app = Fastify()
  expect(app.get('/ws', { websocket: { readLimit: 10, pingInterval: 1000, subprotocols: ['chat'] } }, () => {})).type.not.toRaiseError()
  expect(app.get('/ws', { websocket: { readLimit: 'big' } }, () => {})).type.toRaiseError("Type 'string' is not assignable to type 'number'")
  const options: RouteWebsocketOptions = { checkOrigin: false, onInvalidMessage: 'close' }
  expect(options).type.toBeAssignableTo<RouteWebsocketOptions>()
})

test('a TypedConn is a Conn', () => {
  expect<TypedConn<{ a: number }, { b: string }>>().type.toBeAssignableTo<Conn>()
  expect<TypedConn<{ a: number }, { b: string }>['readJSON']>().type.toBeCallableWith()
  expect<MessageValidationError['closeCode']>().type.toBe<1007>()
})

/** A made-up type provider: the static type is whatever the schema's `example` field holds. */
interface ExampleTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends { example: infer T } ? T : unknown
  serializer: this['schema'] extends { example: infer T } ? T : unknown
}

test("any provider plugged into Fastify's type-provider machinery types the messages", () => {
  const app = Fastify().withTypeProvider<ExampleTypeProvider>()
  app.get('/custom', {
    websocket: true,
    schema: { incoming: { example: { count: 1 } }, outgoing: { example: 'text' } }
  }, async (conn) => {
    // Fastify infers route schemas as const, so the literal types come through.
    expect(conn.readJSON()).type.toBe<Promise<{ readonly count: 1 }>>()
    expect(conn.writeJSON).type.toBeCallableWith('text')
    expect(conn.writeJSON).type.not.toBeCallableWith('other text')
  })
})
