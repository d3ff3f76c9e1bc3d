// A typed JSON chat with rooms: one websocket route whose messages are validated and serialised from
// TypeBox schemas, a plain HTTP route that explains refusals, and a small browser page served by the
// same app.
//   npm start            (PORT defaults to 3000; HOST to 127.0.0.1)
// then open the printed URL in two browser tabs.
import { existsSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type FastifySchemaValidationError } from 'fastify'
import { Type, type Static, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { fastifyWsconn, type TypedConn } from '../lib/index.js'

/** What a browser sends: one line of text. */
export const ClientMessage = Type.Object({
  text: Type.String({ minLength: 1, maxLength: 500 })
})

/** A chat line, or someone joining or leaving the room. */
const RoomEvent = Type.Object({
  kind: Type.Union([Type.Literal('message'), Type.Literal('join'), Type.Literal('leave')]),
  from: Type.String(),
  text: Type.String(),
  at: Type.String()
})

/** Who is in the room: sent to a newcomer right after its own `join`. */
const MemberList = Type.Object({
  kind: Type.Literal('members'),
  room: Type.String(),
  members: Type.Array(Type.String())
})

/** What the server sends. */
export const ServerMessage = Type.Union([RoomEvent, MemberList])

// Escaped `-`: the page uses the same expression in `pattern` attributes, which browsers compile
// with the `v` flag, where an unescaped `-` at the end of a class is a syntax error.
const NAME = '^[A-Za-z0-9_\\-]+$'

/** The query string of `/chat` and `/chat/check`: a nickname and a room name, short words. */
export const JoinQuery = Type.Object({
  nick: Type.String({ minLength: 1, maxLength: 24, pattern: NAME }),
  room: Type.String({ minLength: 1, maxLength: 32, pattern: NAME, default: 'lobby' })
})

/** The rule each field of the query breaks, worded for the person who typed it. */
const JOIN_RULES: Record<string, string> = {
  nick: 'a nickname is 1 to 24 letters, digits, _ or -',
  room: 'a room name is 1 to 32 letters, digits, _ or -'
}

/** Turns Ajv's first error on the join query into a sentence the page can show as it is. */
function explainJoinQuery (errors: FastifySchemaValidationError[], dataVar: string): Error {
  const [first] = errors
  const field = first?.instancePath.slice(1) || String(first?.params.missingProperty ?? '')
  return new Error(JOIN_RULES[field] ?? `${dataVar}${first?.instancePath ?? ''} ${first?.message ?? 'is invalid'}`)
}

type ChatConn = TypedConn<Static<typeof ClientMessage>, Static<typeof ServerMessage>>

/** The topic a room's messages are published on. */
const roomTopic = (room: string): string => `room:${room}`

/**
 * Who is in which room, in this process: the only code that knows how rooms are kept (a nickname
 * is unique within its room). Delivery is the plugin's: each member subscribes to its room's topic.
 */
class Rooms {
  readonly #rooms = new Map<string, Map<string, ChatConn>>()

  has (room: string, nick: string): boolean {
    return this.#rooms.get(room)?.has(nick) ?? false
  }

  /** Adds `conn` as `nick`; false when the nickname is taken in that room. */
  enter (room: string, nick: string, conn: ChatConn): boolean {
    let members = this.#rooms.get(room)
    if (members === undefined) this.#rooms.set(room, members = new Map())
    if (members.has(nick)) return false
    members.set(nick, conn)
    conn.subscribe(roomTopic(room))
    return true
  }

  exit (room: string, nick: string): void {
    const members = this.#rooms.get(room)
    members?.delete(nick)
    if (members?.size === 0) this.#rooms.delete(room)
  }

  members (room: string): string[] {
    return [...this.#rooms.get(room)?.keys() ?? []]
  }
}

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

  const rooms = new Rooms()
  const taken = (nick: string, room: string): string => `the nickname ${nick} is taken in ${room}`
  const now = (): string => new Date().toISOString()

  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page))

  // A browser never lets a page read why a handshake was refused (it reports 1006 and nothing else),
  // so the page asks the same questions here first, and again after such a failure, to show why.
  app.get('/chat/check', {
    schema: { querystring: JoinQuery },
    schemaErrorFormatter: explainJoinQuery
  }, async (request, reply) => {
    const { nick, room } = request.query
    if (rooms.has(room, nick)) return await reply.code(409).send({ message: taken(nick, room) })
    return { ok: true }
  })

  app.get('/chat', {
    websocket: true,
    schema: { querystring: JoinQuery, incoming: ClientMessage, outgoing: ServerMessage },
    schemaErrorFormatter: explainJoinQuery,
    preHandler: async (request, reply) => {
      const { nick, room } = request.query
      if (rooms.has(room, nick)) await reply.code(409).send({ message: taken(nick, room) })
    }
  }, async (conn, request) => {
    const { nick, room } = request.query
    // Two upgrades with one nickname can both pass the hook before either enters.
    if (!rooms.enter(room, nick, conn)) return await conn.close(1008, taken(nick, room))
    // Serialised once by schema.outgoing and offered to every member of the room; a member that
    // stopped reading is closed (1008) rather than buffered for without bound.
    const publish = (message: Static<typeof ServerMessage>): void => {
      conn.publishJSON(roomTopic(room), message).catch((err: unknown) => { request.log.warn({ err }, 'chat: publish failed') })
    }
    publish({ kind: 'join', from: nick, text: `${nick} joined`, at: now() })
    conn.writeJSON({ kind: 'members', room, members: rooms.members(room) }).catch(() => {})
    try {
      for (;;) {
        // Typed and validated: anything else closes the connection with 1007.
        const { text } = await conn.readJSON()
        publish({ kind: 'message', from: nick, text, at: now() })
      }
    } finally {
      rooms.exit(room, nick)
      publish({ kind: 'leave', from: nick, text: `${nick} left`, at: now() })
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
  // The port actually bound, which differs from PORT=0.
  const bound = (app.server.address() as AddressInfo).port
  console.log(`chat: open http://${shown}:${bound}/ in two browser tabs`)
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
