// A typed JSON chat: one websocket route whose messages are validated and serialised from TypeBox
// schemas, and a small browser page served by the same app.
//   npm start            (PORT defaults to 3000; HOST to 127.0.0.1)
// then open the printed URL in two browser tabs.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Type, type Static, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { fastifyWsconn, type TypedConn } from '../lib/index.js'

/** What a browser sends: one line of text. */
export const ClientMessage = Type.Object({
  text: Type.String({ minLength: 1, maxLength: 500 })
})

/** What the server sends: a chat line, or someone joining or leaving. */
export const ServerMessage = Type.Object({
  kind: Type.Union([Type.Literal('message'), Type.Literal('join'), Type.Literal('leave')]),
  from: Type.String(),
  text: Type.String(),
  at: Type.String()
})

/** The query string of `/chat`: the nickname, a short word. */
export const JoinQuery = Type.Object({
  nick: Type.String({ minLength: 1, maxLength: 24, pattern: '^[A-Za-z0-9_-]+$' })
})

type ChatConn = TypedConn<Static<typeof ClientMessage>, Static<typeof ServerMessage>>

// The page sits next to this file, or in the source tree when this file runs compiled from build/.
const PAGE_PATH = [join(__dirname, 'chat.html'), join(__dirname, '..', '..', 'examples', 'chat.html')].find((path) => existsSync(path))

/** Builds the chat application (not listening yet). */
export async function buildChatApp (options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const page = readFileSync(PAGE_PATH ?? 'chat.html', 'utf8')
  const app = Fastify(options).withTypeProvider<TypeBoxTypeProvider>()
  // Awaited, so the routes below are declared after the plugin has loaded.
  // Chat lines repeat a lot: with context takeover, permessage-deflate shrinks them several times.
  // Connections that stall before their request are closed after 10 s (the default headersTimeout).
  await app.register(fastifyWsconn, { readLimit: 4096, pingInterval: 30_000, compression: true })

  const members = new Set<ChatConn>()
  const broadcast = (message: Static<typeof ServerMessage>): void => {
    for (const member of members) {
      // A member that went away meanwhile is removed by its own handler.
      member.writeJSON(message).catch(() => {})
    }
  }

  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page))

  app.get('/chat', {
    websocket: true,
    schema: { querystring: JoinQuery, incoming: ClientMessage, outgoing: ServerMessage }
  }, async (conn, request) => {
    const nick = request.query.nick
    members.add(conn)
    broadcast({ kind: 'join', from: nick, text: `${nick} joined`, at: new Date().toISOString() })
    try {
      for (;;) {
        // Typed and validated: anything else closes the connection with 1007.
        const { text } = await conn.readJSON()
        broadcast({ kind: 'message', from: nick, text, at: new Date().toISOString() })
      }
    } finally {
      members.delete(conn)
      broadcast({ kind: 'leave', from: nick, text: `${nick} left`, at: new Date().toISOString() })
    }
  })
  return app
}

async function main (): Promise<void> {
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  const app = await buildChatApp({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
  await app.listen({ port, host })
  const shown = host === '127.0.0.1' || host === '0.0.0.0' ? 'localhost' : host
  console.log(`chat: open http://${shown}:${port}/ in two browser tabs`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
