// What the fan-out job writes and reads on the wire, for our plugin (plain text messages) and for
// Socket.IO (Engine.IO v4 packets over WebSocket: `0{...}` open, `40` connect to the default
// namespace, `40{"sid":...}` its answer, `2`/`3` ping and pong, `42["event",arg]` an event).
import { PUBLISH_EVENT } from '../redis/protocol.js'
import { TEXT, maskedFrame } from './frames.js'

/** Digits of the sequence number at the start of every published payload. */
export const SEQ_DIGITS = 10

/** What one received message is, for the job. */
export const enum Packet { Other, Message, Open, Connected, Ping }

/** The client's Socket.IO CONNECT packet for the default namespace, and its pong, as masked frames. */
export const CONNECT_FRAME = maskedFrame(TEXT, Buffer.from('40'))
export const PONG_FRAME = maskedFrame(TEXT, Buffer.from('3'))

/** Where the sequence number starts in a Socket.IO event `42["m","...`. */
const EVENT_SEQ_OFFSET = '42["m","'.length
const FILLER = 'abcdefghijklmnopqrstuvwxyz'

/**
 * The publish trigger for sequence number `seq`: a text payload of `size` bytes that starts with
 * the number, which the server publishes as it is (our plugin) or emits to the room as the event's
 * argument (Socket.IO), so every subscriber's copy carries it.
 */
export function publishFrame (protocol: 'ws' | 'socketio', seq: number, size: number): Buffer {
  const digits = String(seq).padStart(SEQ_DIGITS, '0')
  const payload = digits + FILLER.repeat(Math.ceil(size / FILLER.length)).slice(0, Math.max(0, size - SEQ_DIGITS))
  const text = protocol === 'ws' ? payload : `42${JSON.stringify([PUBLISH_EVENT, payload])}`
  return maskedFrame(TEXT, Buffer.from(text))
}

/** What a message is, from its first bytes. */
export function classify (protocol: 'ws' | 'socketio', head: Buffer, length: number): Packet {
  if (protocol === 'ws') return Packet.Message
  if (length === 1 && head[0] === 0x32) return Packet.Ping // "2"
  if (length >= 2 && head[0] === 0x34 && head[1] === 0x32) return Packet.Message // "42"
  if (length >= 2 && head[0] === 0x34 && head[1] === 0x30) return Packet.Connected // "40"
  if (length >= 2 && head[0] === 0x30 && head[1] === 0x7b) return Packet.Open // "0{"
  return Packet.Other
}

/** The sequence number of a Packet.Message, or -1 when its head holds no number where it should. */
export function sequenceOf (protocol: 'ws' | 'socketio', head: Buffer, length: number): number {
  const start = protocol === 'ws' ? 0 : EVENT_SEQ_OFFSET
  if (length < start + SEQ_DIGITS) return -1
  let seq = 0
  for (let i = start; i < start + SEQ_DIGITS; i++) {
    const digit = head[i]! - 0x30
    if (digit < 0 || digit > 9) return -1
    seq = seq * 10 + digit
  }
  return seq
}
