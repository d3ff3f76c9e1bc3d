import { TextMessage } from '../protocol/constants.js'
import { UsageError } from '../protocol/errors.js'
import { rejected } from '../settle.js'
import type { Conn } from './conn.js'
import type { ReadOptions } from './read.js'

/**
 * How `readJSON` and `writeJSON` turn messages into values and back, when something other than
 * plain JSON.parse/JSON.stringify is wanted (the plugin's schema validation and serializers).
 */
export interface JsonCodec {
  /** The value `readJSON` resolves with for a received message; may throw or reject. */
  decode (conn: Conn, data: Buffer): unknown
  /** The text `writeJSON` sends for `value`, or undefined to use JSON.stringify; may throw. */
  encode: ((value: unknown) => string) | undefined
}

/** Conn.readJSON, on top of readMessage. */
export async function readJSON<T> (conn: Conn, codec: JsonCodec | undefined, options: ReadOptions | undefined): Promise<T> {
  const { data } = await conn.readMessage(options)
  if (codec !== undefined) return await codec.decode(conn, data) as T
  return JSON.parse(data.toString()) as T
}

/** Conn.writeJSON, on top of writeMessage. */
export function writeJSON (conn: Conn, codec: JsonCodec | undefined, value: unknown): Promise<void> {
  const encode = codec?.encode
  let text: string | undefined
  if (encode === undefined) {
    text = JSON.stringify(value)
    if (text === undefined) return rejected(new UsageError('value has no JSON representation'))
  } else {
    try {
      text = encode(value)
    } catch (error) {
      return rejected(error)
    }
    if (typeof text !== 'string') return rejected(new UsageError('the serializer did not return a string'))
  }
  return conn.writeMessage(TextMessage, text)
}
