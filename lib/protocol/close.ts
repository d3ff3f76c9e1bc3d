import { isUtf8 } from 'node:buffer'
import { MAX_CONTROL_PAYLOAD } from './constants.js'

const LABELS: Record<number, string> = {
  1000: 'normal',
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status',
  1006: 'abnormal closure',
  1007: 'invalid payload data',
  1008: 'policy violation',
  1009: 'message too big',
  1010: 'mandatory extension missing',
  1011: 'internal server error',
  1012: 'service restart',
  1013: 'try again later',
  1014: 'bad gateway',
  1015: 'TLS handshake error'
}

/** The short English label of a close code ("normal", "going away", ...); codes without one get "". */
export function closeCodeLabel (code: number): string {
  return LABELS[code] ?? ''
}

/**
 * Reports whether a peer may put `code` in a close frame (RFC 6455 §7.4 and the IANA registry):
 * 1000-1003, 1007-1014 and 3000-4999. 1004, 1005, 1006, 1015 and everything else is a protocol error.
 */
export function isValidReceivedCloseCode (code: number): boolean {
  if (!Number.isInteger(code)) return false
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}

/**
 * Builds a close frame payload: the code as two big-endian bytes, then the UTF-8 reason.
 * Code 1005 gives an empty payload because 1005 may never be sent.
 * Throws a RangeError when the code may not be sent or the payload would pass 125 bytes.
 */
export function formatCloseMessage (code: number, text = ''): Buffer {
  if (code === 1005) return Buffer.alloc(0)
  if (!isValidReceivedCloseCode(code)) throw new RangeError(`websocket: close code ${code} may not be sent`)
  const reasonLength = Buffer.byteLength(text)
  if (reasonLength > MAX_CONTROL_PAYLOAD - 2) {
    throw new RangeError(`websocket: close reason is ${reasonLength} bytes, at most ${MAX_CONTROL_PAYLOAD - 2} fit`)
  }
  const payload = Buffer.alloc(2 + reasonLength)
  payload.writeUInt16BE(code, 0)
  payload.write(text, 2)
  return payload
}

/** Cuts `text` so that its UTF-8 encoding fits in `maxBytes` without splitting a character. */
export function truncateUtf8 (text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text
  const bytes = Buffer.from(text).subarray(0, maxBytes)
  let end = bytes.length
  while (end > 0 && (bytes[end - 1]! & 0xc0) === 0x80) end--
  if (end > 0) {
    const lead = bytes[end - 1]!
    const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
    if (end - 1 + need > bytes.length) end--
    else end = bytes.length
  }
  return bytes.subarray(0, end).toString()
}

/** The parsed content of a close frame, or the rule it broke. */
export type ClosePayload =
  | { ok: true, code: number, reason: string }
  | { ok: false, code: 'ERR_WS_INVALID_CLOSE_PAYLOAD' | 'ERR_WS_INVALID_CLOSE_CODE' | 'ERR_WS_INVALID_UTF8', closeCode: 1002 | 1007, message: string }

/** Parses and validates a received close payload (RFC 6455 §5.5.1, §7.4). */
export function parseClosePayload (payload: Buffer): ClosePayload {
  if (payload.length === 0) return { ok: true, code: 1005, reason: '' }
  if (payload.length === 1) return { ok: false, code: 'ERR_WS_INVALID_CLOSE_PAYLOAD', closeCode: 1002, message: 'close frame with a 1-byte payload' }
  const code = payload.readUInt16BE(0)
  if (!isValidReceivedCloseCode(code)) return { ok: false, code: 'ERR_WS_INVALID_CLOSE_CODE', closeCode: 1002, message: `invalid close code ${code}` }
  const reason = payload.subarray(2)
  if (!isUtf8(reason)) return { ok: false, code: 'ERR_WS_INVALID_UTF8', closeCode: 1007, message: 'close reason is not valid UTF-8' }
  return { ok: true, code, reason: reason.toString() }
}
