import t from 'tap'
import { closeCodeLabel, formatCloseMessage, isValidReceivedCloseCode, parseClosePayload, truncateUtf8 } from '../lib/protocol/close.js'
import * as constants from '../lib/protocol/constants.js'
import {
  CloseError,
  CloseSentError,
  HandshakeError,
  isCloseError,
  isUnexpectedCloseError,
  ProtocolError,
  ReadLimitError,
  TimeoutError,
  UsageError,
  WriteClosedError
} from '../lib/protocol/errors.js'

/**
 * RFC 6455 §7.4.1 (1000-1003, 1007-1011; 1004-1006 and 1015 never on the wire), the IANA registry
 * (1012-1014), §7.4.2 (3000-3999 registered, 4000-4999 private). Everything else is not allowed.
 */
function allowedOnTheWire (code: number): boolean {
  const registered = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014])
  if (registered.has(code)) return true
  return Math.floor(code / 1000) === 3 || Math.floor(code / 1000) === 4
}

const REASONS = ['', 'bye', 'κόσμε', '😀 and €', 'x'.repeat(123), '€'.repeat(41), '😀'.repeat(30) + 'abc']

t.test('the close code table, 0..65535', async (t) => {
  const wrong: number[] = []
  let allowed = 0
  for (let code = 0; code <= 65535; code++) {
    const expected = allowedOnTheWire(code)
    if (expected) allowed++
    if (isValidReceivedCloseCode(code) !== expected) wrong.push(code)
  }
  t.same(wrong, [])
  t.equal(allowed, 4 + 8 + 2000, '1000-1003, 1007-1014, 3000-4999')
  t.equal(isValidReceivedCloseCode(1005), false)
  t.equal(isValidReceivedCloseCode(1006), false)
  t.equal(isValidReceivedCloseCode(1015), false)
  for (const code of [1000.5, 3000.25, NaN, Infinity, -1000]) t.equal(isValidReceivedCloseCode(code), false, `${code} is not a close code`)
})

t.test('parseClosePayload', async (t) => {
  t.same(parseClosePayload(Buffer.alloc(0)), { ok: true, code: 1005, reason: '' }, 'empty is 1005')
  t.match(parseClosePayload(Buffer.from([0x03])), { ok: false, code: 'ERR_WS_INVALID_CLOSE_PAYLOAD', closeCode: 1002 }, '1 byte is 1002')

  const wrong: string[] = []
  for (let code = 0; code <= 5000; code++) {
    const payload = Buffer.from([code >> 8, code & 0xff, 0x68, 0x69])
    const result = parseClosePayload(payload)
    if (allowedOnTheWire(code)) {
      if (!(result.ok && result.code === code && result.reason === 'hi')) wrong.push(`${code} rejected`)
    } else if (result.ok || result.closeCode !== 1002 || result.code !== 'ERR_WS_INVALID_CLOSE_CODE' || !result.message.includes(String(code))) {
      wrong.push(`${code} accepted`)
    }
    const bare = parseClosePayload(payload.subarray(0, 2))
    if (bare.ok !== allowedOnTheWire(code) || (bare.ok && bare.reason !== '')) wrong.push(`${code} without a reason`)
  }
  t.same(wrong, [], 'codes 0..5000 with and without a reason')
  t.match(parseClosePayload(Buffer.from([0xff, 0xff])), { ok: false, code: 'ERR_WS_INVALID_CLOSE_CODE', closeCode: 1002 }, '65535')

  for (const reason of REASONS) {
    const payload = Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from(reason)])
    t.same(parseClosePayload(payload), { ok: true, code: 4000, reason }, `reason ${JSON.stringify(reason.slice(0, 10))}`)
  }
  for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x61, 0xe2, 0x82], [0x80]]) {
    const payload = Buffer.from([0x03, 0xe8, ...bad])
    t.match(parseClosePayload(payload), { ok: false, code: 'ERR_WS_INVALID_UTF8', closeCode: 1007, message: /UTF-8/ }, `reason ${Buffer.from(bad).toString('hex')} is 1007`)
  }
  t.match(parseClosePayload(Buffer.from([0x03, 0xed, 0xff])), { ok: false, code: 'ERR_WS_INVALID_CLOSE_CODE', closeCode: 1002 }, 'a bad code wins over a bad reason')
})

t.test('formatCloseMessage', async (t) => {
  const wrong: string[] = []
  for (let code = 0; code <= 5000; code++) {
    if (code === 1005) continue
    if (allowedOnTheWire(code)) {
      for (const reason of REASONS) {
        const payload = formatCloseMessage(code, reason)
        const parsed = parseClosePayload(payload)
        if (payload.length !== 2 + Buffer.byteLength(reason) || payload.readUInt16BE(0) !== code ||
          !parsed.ok || parsed.code !== code || parsed.reason !== reason) {
          wrong.push(`${code} ${JSON.stringify(reason)}`)
        }
      }
    } else {
      try {
        formatCloseMessage(code, 'x')
        wrong.push(`${code} was formatted`)
      } catch (err) {
        if (!(err instanceof RangeError) || !err.message.includes(String(code))) wrong.push(`${code}: ${String(err)}`)
      }
    }
  }
  t.same(wrong, [], 'codes 0..5000 round-trip or throw a RangeError')
  t.equal(formatCloseMessage(1000).toString('hex'), '03e8', 'the reason defaults to empty')
  t.equal(formatCloseMessage(1005).length, 0, '1005 is the empty payload')
  t.equal(formatCloseMessage(1005, 'not sent').length, 0, '1005 never carries a reason')
  t.same(parseClosePayload(formatCloseMessage(1005)), { ok: true, code: 1005, reason: '' }, '1005 round-trips')
  for (const code of [1004, 1006, 1015, 999, 2999, 5000, 65535, -1, 1000.5, 3000.9, NaN]) {
    t.throws(() => formatCloseMessage(code), RangeError, `${code} may not be sent`)
  }
  for (const reason of ['x'.repeat(124), '€'.repeat(41) + 'a', '😀'.repeat(31), 'x'.repeat(1000)]) {
    t.throws(() => formatCloseMessage(1000, reason), { name: 'RangeError', message: /at most 123 fit/ }, `a ${Buffer.byteLength(reason)}-byte reason`)
  }
  t.equal(formatCloseMessage(1000, '€'.repeat(41)).length, 125, 'a 123-byte reason makes a 125-byte payload')
})

t.test('truncateUtf8 never splits a character', async (t) => {
  const samples = [
    'plain ascii text',
    'éèàçùñöß'.repeat(3),
    '€ 中文字符 €',
    '😀😁😂🤣',
    'a€😀ßb'.repeat(4),
    '\u0000\u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}',
    ''
  ]
  const wrong: string[] = []
  let cuts = 0
  for (const text of samples) {
    const codePoints = [...text]
    const size = Buffer.byteLength(text)
    for (let max = 0; max <= size + 2; max++) {
      cuts++
      const result = truncateUtf8(text, max)
      // The longest run of whole code points that fits.
      let fit = 0
      let bytes = 0
      while (fit < codePoints.length && bytes + Buffer.byteLength(codePoints[fit]!) <= max) bytes += Buffer.byteLength(codePoints[fit++]!)
      const expected = codePoints.slice(0, fit).join('')
      if (result !== expected) wrong.push(`${JSON.stringify(text)} at ${max}: ${JSON.stringify(result)}`)
      if (Buffer.byteLength(result) > max) wrong.push(`${JSON.stringify(text)} at ${max}: too long`)
      if (result.includes('\ufffd')) wrong.push(`${JSON.stringify(text)} at ${max}: replacement character`)
    }
  }
  t.same(wrong, [], `${cuts} cuts`)
  const fits = 'fits'
  t.equal(truncateUtf8(fits, 4), fits, 'a text that fits comes back unchanged')
  t.equal(truncateUtf8('x'.repeat(200) + '€', 123), 'x'.repeat(123), 'a close reason cut to 123 bytes')
  for (const [char, size] of [['ß', 2], ['€', 3], ['😀', 4]] as const) {
    const text = 'ab' + char + 'cd'
    for (let cut = 2; cut < 2 + size; cut++) t.equal(truncateUtf8(text, cut), 'ab', `${size}-byte character cut after ${cut - 2} of its bytes`)
    t.equal(truncateUtf8(text, 2 + size), 'ab' + char, `${size}-byte character kept whole`)
  }
})

t.test('closeCodeLabel', async (t) => {
  const labels: Record<number, string> = {
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
  for (const [code, label] of Object.entries(labels)) t.equal(closeCodeLabel(Number(code)), label, code)
  for (const code of [0, 999, 1004, 1016, 3000, 4999]) t.equal(closeCodeLabel(code), '', `${code} has no label`)
})

t.test('close code constants', async (t) => {
  t.equal(constants.CloseNormalClosure, 1000)
  t.equal(constants.CloseGoingAway, 1001)
  t.equal(constants.CloseProtocolError, 1002)
  t.equal(constants.CloseUnsupportedData, 1003)
  t.equal(constants.CloseNoStatusReceived, 1005)
  t.equal(constants.CloseAbnormalClosure, 1006)
  t.equal(constants.CloseInvalidFramePayloadData, 1007)
  t.equal(constants.ClosePolicyViolation, 1008)
  t.equal(constants.CloseMessageTooBig, 1009)
  t.equal(constants.CloseMandatoryExtension, 1010)
  t.equal(constants.CloseInternalServerErr, 1011)
  t.equal(constants.CloseServiceRestart, 1012)
  t.equal(constants.CloseTryAgainLater, 1013)
  t.equal(constants.CloseTLSHandshake, 1015)
  t.equal(constants.MAX_CONTROL_PAYLOAD, 125)
  t.equal(constants.MAX_HEADER_SIZE, 14)
  t.same([constants.TextMessage, constants.BinaryMessage, constants.CloseMessage, constants.PingMessage, constants.PongMessage, constants.OPCODE_CONTINUATION], [1, 2, 8, 9, 10, 0])
  t.equal(constants.WEBSOCKET_GUID, '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
})

t.test('error classes', async (t) => {
  const close = new CloseError(1000, 'done')
  t.ok(close instanceof Error)
  t.equal(close.name, 'CloseError')
  t.equal(close.code, 1000)
  t.equal(close.text, 'done')
  t.equal(close.message, 'websocket: close 1000 (normal): done')
  t.equal(new CloseError(4001, '').message, 'websocket: close 4001 ()', 'no label, no reason')
  t.equal(new CloseError(1006, '').message, 'websocket: close 1006 (abnormal closure)')

  const protocol = new ProtocolError('bad frame', 1002, 'ERR_WS_RESERVED_OPCODE')
  t.equal(protocol.name, 'ProtocolError')
  t.equal(protocol.code, 'ERR_WS_RESERVED_OPCODE')
  t.equal(protocol.closeCode, 1002)
  t.equal(protocol.message, 'websocket: bad frame')
  t.equal(new ProtocolError('utf8', 1007, 'ERR_WS_INVALID_UTF8').code, 'ERR_WS_INVALID_UTF8')

  const limit = new ReadLimitError()
  t.ok(limit instanceof ProtocolError)
  t.equal(limit.name, 'ReadLimitError')
  t.equal(limit.closeCode, 1009)
  t.equal(limit.code, 'ERR_WS_READ_LIMIT')
  t.equal(limit.message, 'websocket: read limit exceeded')
  t.equal(new ReadLimitError('too big').message, 'websocket: too big')
  const fragments = new ReadLimitError('too many frames', 'ERR_WS_TOO_MANY_FRAGMENTS')
  t.same([fragments.name, fragments.closeCode, fragments.code], ['ReadLimitError', 1009, 'ERR_WS_TOO_MANY_FRAGMENTS'])

  const timeout = new TimeoutError('read deadline')
  t.equal(timeout.name, 'TimeoutError')
  t.equal(timeout.code, 'ERR_WS_TIMEOUT')
  t.equal(timeout.timeout, true)
  t.equal(timeout.message, 'websocket: read deadline')

  const sent = new CloseSentError()
  t.equal(sent.name, 'CloseSentError')
  t.equal(sent.code, 'ERR_WS_CLOSE_SENT')
  t.equal(sent.message, 'websocket: close sent')

  t.equal(new WriteClosedError().message, 'websocket: write closed')
  t.equal(new WriteClosedError('writer closed').message, 'websocket: writer closed')
  t.equal(new WriteClosedError().code, 'ERR_WS_WRITE_CLOSED')
  t.equal(new WriteClosedError().name, 'WriteClosedError')

  const usage = new UsageError('bad type')
  t.ok(usage instanceof TypeError)
  t.equal(usage.name, 'UsageError')
  t.equal(usage.code, 'ERR_WS_USAGE')
  t.equal(usage.message, 'websocket: bad type')

  const refused = new HandshakeError('refused', 403)
  t.equal(refused.name, 'HandshakeError')
  t.equal(refused.code, 'ERR_WS_HANDSHAKE')
  t.equal(refused.status, 403)
  t.same(refused.headers, {})
  t.equal(refused.body.length, 0)
  const withBody = new HandshakeError('refused', 400, { 'x-a': 'b' }, Buffer.from('no'))
  t.same(withBody.headers, { 'x-a': 'b' })
  t.equal(withBody.body.toString(), 'no')
})

t.test('isCloseError and isUnexpectedCloseError', async (t) => {
  const close = new CloseError(1001, '')
  t.equal(isCloseError(close, 1000, 1001), true)
  t.equal(isCloseError(close, 1000), false)
  t.equal(isCloseError(close), false, 'no codes match nothing')
  t.equal(isCloseError(new Error('x'), 1001), false)
  t.equal(isCloseError(undefined, 1001), false)
  t.equal(isCloseError({ code: 1001 }, 1001), false, 'a look-alike object is not a CloseError')
  t.equal(isCloseError(new Error('wrapped', { cause: close }), 1001), true, 'found through cause')

  let deep: Error = close
  for (let i = 0; i < 7; i++) deep = new Error(`level ${i}`, { cause: deep })
  t.equal(isCloseError(deep, 1001), true, 'seven wrappers deep')
  t.equal(isCloseError(new Error('one more', { cause: deep }), 1001), false, 'eight wrappers is too deep')
  t.equal(isCloseError(new Error('bad cause', { cause: 'text' }), 1001), false, 'a cause that is not an Error')

  t.equal(isUnexpectedCloseError(close, 1000), true)
  t.equal(isUnexpectedCloseError(close, 1000, 1001), false)
  t.equal(isUnexpectedCloseError(close), true, 'no expected codes: every close is unexpected')
  t.equal(isUnexpectedCloseError(new Error('x'), 1000), false, 'not a close error')
  t.equal(isUnexpectedCloseError(new Error('w', { cause: close }), 1000), true)
})
