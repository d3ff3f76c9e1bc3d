// A typed JSON chat with rooms: one websocket route whose messages are validated and serialised from
// TypeBox schemas, a plain HTTP route that explains refusals, and a small browser page served by the
// same app.
//   npm start            (PORT defaults to 3000; HOST to 127.0.0.1)
// then open the printed URL in two browser tabs. With REDIS_URL set (redis://host:port), several
// instances share rooms: start two on two ports and chat across them.
import { randomUUID } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type FastifySchemaValidationError } from 'fastify'
import { Type, type Static, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { createClient } from 'redis'
import { fastifyWsconn } from '../lib/index.js'

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

/** The topic a room's messages are published on. */
const roomTopic = (room: string): string => `room:${room}`

/**
 * Who is in which room: the only code that knows how presence is kept (a nickname is unique within
 * its room). Delivery is the plugin's: each member subscribes to its room's topic.
 */
interface Presence {
  has: (room: string, nick: string) => Promise<boolean>
  /** Claims `nick` in `room`; false when it is taken. */
  enter: (room: string, nick: string) => Promise<boolean>
  exit: (room: string, nick: string) => Promise<void>
  members: (room: string) => Promise<string[]>
  close: () => Promise<void>
}

/** Presence in this process only: one server. */
class LocalPresence implements Presence {
  readonly #rooms = new Map<string, Set<string>>()

  async has (room: string, nick: string): Promise<boolean> {
    return this.#rooms.get(room)?.has(nick) ?? false
  }

  async enter (room: string, nick: string): Promise<boolean> {
    let members = this.#rooms.get(room)
    if (members === undefined) this.#rooms.set(room, members = new Set())
    if (members.has(nick)) return false
    members.add(nick)
    return true
  }

  async exit (room: string, nick: string): Promise<void> {
    const members = this.#rooms.get(room)
    members?.delete(nick)
    if (members?.size === 0) this.#rooms.delete(room)
  }

  async members (room: string): Promise<string[]> {
    return [...this.#rooms.get(room) ?? []]
  }

  async close (): Promise<void> {}
}

/**
 * Presence shared by every instance on one Redis: a hash per room, nickname -> instance. An
 * instance removes its own members when it closes; one that crashes leaves them until restarted
 * with the same INSTANCE_ID (an example's trade-off: a real app would expire them).
 */
class RedisPresence implements Presence {
  readonly #client: ReturnType<typeof createClient>
  readonly #instance: string
  readonly #mine = new Set<string>()

  constructor (url: string, instance: string) {
    this.#client = createClient({ url })
    this.#instance = instance
  }

  async connect (): Promise<void> {
    await this.#client.connect()
  }

  async has (room: string, nick: string): Promise<boolean> {
    return await this.#client.hExists(`chat:members:${room}`, nick) === 1
  }

  async enter (room: string, nick: string): Promise<boolean> {
    const claimed = await this.#client.hSetNX(`chat:members:${room}`, nick, this.#instance) === 1
    if (claimed) this.#mine.add(`${room}\n${nick}`)
    return claimed
  }

  async exit (room: string, nick: string): Promise<void> {
    this.#mine.delete(`${room}\n${nick}`)
    await this.#client.hDel(`chat:members:${room}`, nick)
  }

  async members (room: string): Promise<string[]> {
    return await this.#client.hKeys(`chat:members:${room}`)
  }

  async close (): Promise<void> {
    for (const entry of this.#mine) {
      const [room, nick] = entry.split('\n') as [string, string]
      await this.#client.hDel(`chat:members:${room}`, nick)
    }
    this.#client.destroy()
  }
}

/** Settings of the chat beyond Fastify's. */
export interface ChatOptions {
  /** Redis to share rooms with other instances (topics and presence); none: this process only. */
  redisUrl?: string
}

// The page sits next to this file, or in the source tree when this file runs compiled from build/.
const PAGE_PATH = [join(__dirname, 'chat.html'), join(__dirname, '..', '..', 'examples', 'chat.html')].find((path) => existsSync(path))

/** Builds the chat application (not listening yet). */
export async function buildChatApp (options: FastifyServerOptions = {}, chat: ChatOptions = {}): Promise<FastifyInstance> {
  const page = readFileSync(PAGE_PATH ?? 'chat.html', 'utf8')
  const app = Fastify(options).withTypeProvider<TypeBoxTypeProvider>()
  // Awaited, so the routes below are declared after the plugin has loaded.
  // Chat lines repeat a lot: with context takeover, permessage-deflate shrinks them several times.
  // Connections that stall before their request are closed after 10 s (the default headersTimeout).
  // With Redis, a publish in one instance reaches the room's members in every instance.
  await app.register(fastifyWsconn, {
    readLimit: 4096,
    pingInterval: 30_000,
    compression: true,
    ...(chat.redisUrl === undefined ? {} : { pubsub: { redis: { url: chat.redisUrl } } })
  })
  let rooms: Presence = new LocalPresence()
  if (chat.redisUrl !== undefined) {
    const shared = new RedisPresence(chat.redisUrl, process.env.INSTANCE_ID ?? randomUUID())
    await shared.connect()
    rooms = shared
  }
  // After the connections have closed (and left their rooms), before the process goes.
  app.addHook('onClose', async () => { await rooms.close() })
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
    if (await rooms.has(room, nick)) return await reply.code(409).send({ message: taken(nick, room) })
    return { ok: true }
  })

  app.get('/chat', {
    websocket: true,
    schema: { querystring: JoinQuery, incoming: ClientMessage, outgoing: ServerMessage },
    schemaErrorFormatter: explainJoinQuery,
    preHandler: async (request, reply) => {
      const { nick, room } = request.query
      if (await rooms.has(room, nick)) await reply.code(409).send({ message: taken(nick, room) })
    }
  }, async (conn, request) => {
    const { nick, room } = request.query
    // Two upgrades with one nickname can both pass the hook before either enters.
    if (!await rooms.enter(room, nick)) return await conn.close(1008, taken(nick, room))
    conn.subscribe(roomTopic(room))
    // Serialised once by schema.outgoing and offered to every member of the room; a member that
    // stopped reading is closed (1008) rather than buffered for without bound.
    const publish = (message: Static<typeof ServerMessage>): void => {
      conn.publishJSON(roomTopic(room), message).catch((err: unknown) => { request.log.warn({ err }, 'chat: publish failed') })
    }
    publish({ kind: 'join', from: nick, text: `${nick} joined`, at: now() })
    conn.writeJSON({ kind: 'members', room, members: await rooms.members(room) }).catch(() => {})
    try {
      for (;;) {
        // Typed and validated: anything else closes the connection with 1007.
        const { text } = await conn.readJSON()
        publish({ kind: 'message', from: nick, text, at: now() })
      }
    } finally {
      await rooms.exit(room, nick)
      publish({ kind: 'leave', from: nick, text: `${nick} left`, at: now() })
    }
  })
  return app
}

async function main (): Promise<void> {
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  const app = await buildChatApp({ logger: { level: process.env.LOG_LEVEL ?? 'info' } }, { redisUrl: process.env.REDIS_URL })
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
