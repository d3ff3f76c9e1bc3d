import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Conn } from '../lib/conn/conn.js'
import { dial } from '../lib/dialer.js'
import { fastifyWsconn, MessageValidationError, type WsconnPluginOptions } from '../lib/plugin/index.js'
import { LEVEL, collectLogs, listen, rawRequest, upgradeHeaders } from './helpers/plugin.js'

type Teardown = { teardown: (fn: () => unknown) => void }

async function build (t: Teardown, setup: (app: FastifyInstance) => void, options: WsconnPluginOptions = {}, fastifyOptions = {}): Promise<string> {
  const app = Fastify(fastifyOptions)
  t.teardown(() => app.close())
  await app.register(fastifyWsconn, options)
  setup(app)
  const port = await listen(app)
  return `ws://127.0.0.1:${port}`
}

const ChatIn = {
  type: 'object',
  properties: { text: { type: 'string' }, room: { type: 'string', default: 'lobby' } },
  required: ['text'],
  additionalProperties: false
} as const
const ChatOut = {
  type: 'object',
  properties: { from: { type: 'string' }, text: { type: 'string' } },
  required: ['from', 'text']
} as const

/** Reads one JSON message and answers with what it got, or with the error's name and message. */
async function reportOne (conn: Conn): Promise<void> {
  try {
    const value = await conn.readJSON()
    await conn.writeMessage(1, JSON.stringify({ ok: value }))
  } catch (err) {
    const error = err as MessageValidationError
    await conn.writeMessage(1, JSON.stringify({ error: error.name, message: error.message, closeCode: error.closeCode })).catch(() => {})
  }
}

async function answer (conn: Conn): Promise<unknown> {
  return JSON.parse((await conn.readMessage()).data.toString())
}

t.test('schema.incoming validates with the default compiler; failures close with 1007', async (t) => {
  const url = await build(t, (app) => {
    app.get('/chat', { websocket: true, schema: { incoming: ChatIn } }, async (conn) => {
      for (;;) {
        const value = await conn.readJSON().catch(() => undefined)
        if (value === undefined) return
        await conn.writeMessage(1, JSON.stringify({ ok: value }))
      }
    })
  })
  const conn = await dial(`${url}/chat`)
  await conn.writeJSON({ text: 'hi' })
  t.same(await answer(conn), { ok: { text: 'hi', room: 'lobby' } }, 'defaults applied')
  await conn.writeMessage(2, Buffer.from('{"text":"binary is fine","extra":1}'))
  t.same(await answer(conn), { ok: { text: 'binary is fine', room: 'lobby' } }, 'extra properties removed')
  // Fastify's Ajv coerces scalars (42 would become '42'), so an object is sent.
  await conn.writeJSON({ text: { not: 'a string' } })
  await t.rejects(conn.readMessage(), { code: 1007, text: 'invalid message: message/text must be string' })

  const bad = await dial(`${url}/chat`)
  await bad.writeMessage(1, '{"text": ')
  await t.rejects(bad.readMessage(), { code: 1007, text: 'invalid JSON' })
})

t.test('the close policy rejects readJSON with the error after starting the close', async (t) => {
  const url = await build(t, (app) => {
    app.get('/chat', { websocket: true, schema: { incoming: ChatIn } }, reportOne)
  })
  const conn = await dial(`${url}/chat`)
  await conn.writeJSON({ nope: true })
  // The answer cannot be written any more: the close frame went out first.
  await t.rejects(conn.readMessage(), { code: 1007, text: /must have required property 'text'/ })
})

t.test("onInvalidMessage 'reject' keeps the connection so the handler can answer", async (t) => {
  const url = await build(t, (app) => {
    app.get('/chat', { websocket: { onInvalidMessage: 'reject' }, schema: { incoming: ChatIn } }, async (conn) => {
      await reportOne(conn)
      await reportOne(conn)
      await reportOne(conn)
    })
  })
  const conn = await dial(`${url}/chat`)
  await conn.writeJSON({ text: {} })
  t.same(await answer(conn), { error: 'MessageValidationError', message: 'websocket: invalid message: message/text must be string', closeCode: 1007 })
  await conn.writeMessage(1, 'not json')
  t.same(await answer(conn), { error: 'MessageValidationError', message: 'websocket: invalid JSON', closeCode: 1007 })
  await conn.writeJSON({ text: 'still here' })
  t.same(await answer(conn), { ok: { text: 'still here', room: 'lobby' } })
  await conn.close()
})

t.test('an unhandled validation error closes with 1007 and is logged at info', async (t) => {
  const logs = collectLogs()
  const url = await build(t, (app) => {
    app.get('/chat', { websocket: true, schema: { incoming: ChatIn } }, async (conn) => {
      await conn.readJSON()
    })
  }, { onInvalidMessage: 'reject' }, { logger: logs.logger })
  const conn = await dial(`${url}/chat`)
  await conn.writeJSON({ text: [1, 2] })
  await t.rejects(conn.readMessage(), { code: 1007, text: 'invalid message: message/text must be string' })
  const entry = await logs.waitFor((e) => e.msg === 'websocket: invalid message from the client')
  t.equal(entry.level, LEVEL.info)
  t.equal(entry.err?.type, 'MessageValidationError')
  t.notOk(logs.entries.some((e) => e.level >= LEVEL.error))
})

t.test('without schema.incoming readJSON parses and still applies the policy', async (t) => {
  const url = await build(t, (app) => {
    app.get('/any', { websocket: true }, async (conn) => {
      await reportOne(conn)
      await reportOne(conn)
    })
  })
  const conn = await dial(`${url}/any`)
  await conn.writeMessage(1, '[1,"two",{"three":3}]')
  t.same(await answer(conn), { ok: [1, 'two', { three: 3 }] })
  await conn.writeMessage(1, '{oops')
  await t.rejects(conn.readMessage(), { code: 1007, text: 'invalid JSON' })
})

t.test('schema.outgoing serialises with the compiled serializer: nothing outside the schema leaks', async (t) => {
  const url = await build(t, (app) => {
    app.get('/chat', { websocket: true, schema: { outgoing: ChatOut } }, async (conn) => {
      await conn.writeJSON({ from: 'server', text: 'hello', password: 'hunter2' })
      const missing = await conn.writeJSON({ from: 'server' }).then(() => 'sent', (err: Error) => err.message)
      await conn.writeMessage(1, `missing: ${missing}`)
    })
  })
  const conn = await dial(`${url}/chat`)
  const raw = (await conn.readMessage()).data.toString()
  t.same(JSON.parse(raw), { from: 'server', text: 'hello' })
  t.notMatch(raw, /hunter2/)
  t.match((await conn.readMessage()).data.toString(), /^missing: .*"text" is required/)
  await conn.close()
})

t.test("a user's validator compiler applies, in every result form Fastify accepts", async (t) => {
  const compiled: unknown[] = []
  const url = await build(t, (app) => {
    app.setValidatorCompiler(({ schema, httpPart }) => {
      compiled.push(httpPart)
      const rule = (schema as { rule: string }).rule
      const validate: ((data: unknown) => unknown) & { errors?: unknown } = (data) => {
        const text = (data as { text?: unknown }).text
        switch (rule) {
          case 'undefined':
            return undefined
          case 'upper':
            return { value: { text: String(text).toUpperCase() } }
          case 'error-object':
            return text === 'ok' ? { value: data } : { error: new Error('text must be ok') }
          case 'error-list':
            return text === 'ok' ? {} : { error: [{}, { instancePath: '/text', message: 'is not ok' }] }
          case 'error-other':
            return text === 'ok' ? true : { error: 'nope' }
          case 'false':
            validate.errors = [{ instancePath: '/text', message: 'was refused' }]
            return text === 'ok'
          case 'async':
            validate.errors = [{ instancePath: '/text', message: 'was refused later' }]
            return Promise.resolve(text === 'ok')
          case 'async-reject':
            return text === 'ok' ? Promise.resolve(true) : Promise.reject(new Error('async says no'))
          default:
            throw new Error('validator bug')
        }
      }
      return validate as never
    })
    for (const rule of ['undefined', 'upper', 'error-object', 'error-list', 'error-other', 'false', 'async', 'async-reject']) {
      app.get(`/${rule}`, { websocket: { onInvalidMessage: 'reject' }, schema: { incoming: { rule } } }, async (conn) => {
        await reportOne(conn)
        await reportOne(conn)
      })
    }
    app.get('/broken', { websocket: true, schema: { incoming: { rule: 'broken' } } }, async (conn) => {
      await conn.readJSON()
    })
  })
  const run = async (rule: string, first: unknown, second: unknown): Promise<unknown[]> => {
    const conn = await dial(`${url}/${rule}`)
    await conn.writeJSON(first)
    const a = await answer(conn)
    await conn.writeJSON(second)
    const b = await answer(conn)
    await conn.close()
    return [a, b]
  }
  const invalid = (message: string): object => ({ error: 'MessageValidationError', message: `websocket: invalid message: ${message}`, closeCode: 1007 })
  t.same(await run('undefined', { text: 'a' }, [1]), [{ ok: { text: 'a' } }, { ok: [1] }], 'no verdict means valid')
  t.same(await run('upper', { text: 'abc' }, { text: 'x' }), [{ ok: { text: 'ABC' } }, { ok: { text: 'X' } }])
  t.same(await run('error-object', { text: 'ok' }, { text: 'no' }), [{ ok: { text: 'ok' } }, invalid('text must be ok')])
  t.same(await run('error-list', { text: 'ok' }, { text: 'no' }), [{ ok: { text: 'ok' } }, invalid('message is invalid, message/text is not ok')])
  t.same(await run('error-other', { text: 'ok' }, { text: 'no' }), [{ ok: { text: 'ok' } }, invalid('does not match the schema')])
  t.same(await run('false', { text: 'ok' }, { text: 'no' }), [{ ok: { text: 'ok' } }, invalid('message/text was refused')])
  t.same(await run('async', { text: 'ok' }, { text: 'no' }), [{ ok: { text: 'ok' } }, invalid('message/text was refused later')])
  t.same(await run('async-reject', { text: 'ok' }, { text: 'no' }), [{ ok: { text: 'ok' } }, invalid('async says no')])
  t.ok(compiled.every((part) => part === 'body'), 'compiled as a body')
  t.equal(compiled.length, 8, 'each message schema compiled once per route, however many connections')

  const broken = await dial(`${url}/broken`)
  await broken.writeJSON({ text: 'ok' })
  await t.rejects(broken.readMessage(), { code: 1011 }, 'a throwing validator is a server error')
})

t.test('an async validator that resolves false reports its errors', async (t) => {
  const url = await build(t, (app) => {
    app.get('/ws', {
      websocket: { onInvalidMessage: 'reject' },
      schema: { incoming: { any: true } },
      validatorCompiler: () => {
        const validate = Object.assign((): Promise<boolean> => Promise.resolve(false), { errors: [{ message: 'no path' }] })
        return validate as never
      }
    }, reportOne)
  })
  const conn = await dial(`${url}/ws`)
  await conn.writeJSON({})
  t.same(await answer(conn), { error: 'MessageValidationError', message: 'websocket: invalid message: message no path', closeCode: 1007 })
  await conn.close()
})

t.test("a route's serializer compiler applies to writeJSON", async (t) => {
  const url = await build(t, (app) => {
    app.get('/ws', {
      websocket: true,
      schema: { outgoing: { kind: 'custom' } },
      serializerCompiler: ({ schema }) => (data) => {
        if ((data as { bad?: boolean }).bad === true) return 42 as never
        return `${(schema as unknown as { kind: string }).kind}:${JSON.stringify(data)}`
      }
    }, async (conn) => {
      await conn.writeJSON({ a: 1 })
      const result = await conn.writeJSON({ bad: true }).then(() => 'sent', (err: Error) => `${err.name}: ${err.message}`)
      await conn.writeMessage(1, result)
    })
  })
  const conn = await dial(`${url}/ws`)
  t.equal((await conn.readMessage()).data.toString(), 'custom:{"a":1}')
  t.equal((await conn.readMessage()).data.toString(), 'UsageError: websocket: the serializer did not return a string')
  await conn.close()
})

t.test('a message schema that does not compile is a 500 before any 101', async (t) => {
  const logs = collectLogs()
  const url = await build(t, (app) => {
    app.get('/ws', { websocket: true, schema: { incoming: { type: 'not-a-type' } } }, () => {})
  }, {}, { logger: logs.logger })
  const port = Number(new URL(url).port)
  const response = await rawRequest(port, '/ws', upgradeHeaders())
  t.equal(response.status, 500)
  t.notMatch(response.raw, /101 Switching/)
})

t.test('TypeBox schemas with the TypeBox type provider', async (t) => {
  const url = await build(t, (app) => {
    app.withTypeProvider<TypeBoxTypeProvider>().get('/typed', {
      websocket: true,
      schema: {
        incoming: Type.Object({ n: Type.Integer({ minimum: 0 }) }),
        outgoing: Type.Object({ doubled: Type.Integer() })
      }
    }, async (conn) => {
      for (;;) {
        const { n } = await conn.readJSON()
        await conn.writeJSON({ doubled: n * 2 })
      }
    })
  })
  const conn = await dial(`${url}/typed`)
  await conn.writeJSON({ n: 21 })
  t.same(await answer(conn), { doubled: 42 })
  await conn.writeJSON({ n: -1 })
  await t.rejects(conn.readMessage(), { code: 1007, text: 'invalid message: message/n must be >= 0' })
})

t.test('MessageValidationError', async (t) => {
  const error = new MessageValidationError('invalid JSON', ['detail'], { cause: new SyntaxError('x') })
  t.equal(error.name, 'MessageValidationError')
  t.equal(error.code, 'ERR_WS_INVALID_MESSAGE')
  t.equal(error.closeCode, 1007)
  t.equal(error.reason, 'invalid JSON')
  t.same(error.validation, ['detail'])
  t.type(error.cause, SyntaxError)
  t.type(error, Error)
})
