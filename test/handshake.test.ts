import t from 'tap'
import { PassThrough, Duplex } from 'node:stream'
import { createServer, connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import {
  checkSameOrigin, computeAcceptKey, endSocketSoon, formatHeaderLines, isValidChallengeKey,
  isWebSocketUpgrade, parseSubprotocols, sanitizeHeaderValue, tokenListContainsValue, writeHttpResponse
} from '../lib/handshake.js'

t.test('computeAcceptKey matches the RFC 6455 example', async (t) => {
  t.equal(computeAcceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
})

t.test('tokenListContainsValue', async (t) => {
  t.ok(tokenListContainsValue('Upgrade', 'upgrade'))
  t.ok(tokenListContainsValue('keep-alive, Upgrade', 'upgrade'))
  t.ok(tokenListContainsValue('keep-alive,\tUPGRADE ', 'upgrade'))
  t.ok(tokenListContainsValue(['keep-alive', 'websocket'], 'WebSocket'))
  t.notOk(tokenListContainsValue('upgrader', 'upgrade'))
  t.notOk(tokenListContainsValue('upgr-de, UPGRADf', 'upgrade'), 'same length, another character')
  t.notOk(tokenListContainsValue('UPGRADE', 'upgrade-'), 'shorter')
  t.notOk(tokenListContainsValue('', 'upgrade'))
  t.notOk(tokenListContainsValue(undefined, 'upgrade'))
  t.notOk(tokenListContainsValue([], 'upgrade'))
})

t.test('isWebSocketUpgrade', async (t) => {
  t.ok(isWebSocketUpgrade({ headers: { connection: 'keep-alive, Upgrade', upgrade: 'WebSocket' } }))
  t.notOk(isWebSocketUpgrade({ headers: { connection: 'keep-alive', upgrade: 'websocket' } }))
  t.notOk(isWebSocketUpgrade({ headers: { connection: 'upgrade', upgrade: 'h2c' } }))
  t.notOk(isWebSocketUpgrade({ headers: {} }))
})

t.test('isValidChallengeKey', async (t) => {
  t.ok(isValidChallengeKey('dGhlIHNhbXBsZSBub25jZQ=='))
  t.ok(isValidChallengeKey(Buffer.alloc(16, 0xff).toString('base64')))
  t.notOk(isValidChallengeKey(undefined))
  t.notOk(isValidChallengeKey(['dGhlIHNhbXBsZSBub25jZQ==']))
  t.notOk(isValidChallengeKey(''))
  t.notOk(isValidChallengeKey('dGhlIHNhbXBsZSBub25jZQ'), 'missing padding')
  t.notOk(isValidChallengeKey('dGhlIHNhbXBsZSBub25jZQ==='), '25 characters')
  t.notOk(isValidChallengeKey('dGhlIHNhbXBsZSBub25j'), 'too short')
  t.notOk(isValidChallengeKey(Buffer.alloc(17).toString('base64')), '17 bytes')
  t.notOk(isValidChallengeKey(Buffer.alloc(15).toString('base64')), '15 bytes (20 chars)')
  t.notOk(isValidChallengeKey(Buffer.alloc(18).toString('base64')), '18 bytes (24 chars, no padding)')
  t.notOk(isValidChallengeKey('dGhlIHNhbXBsZSBub25jZQ-_'.slice(0, 22) + '-='), 'url-safe alphabet')
  t.notOk(isValidChallengeKey('dGhlIHNhbXBsZSBub25j ZQ='), 'space inside')
  t.notOk(isValidChallengeKey('dGhlIHNhbXBsZSBub25jZ!=='), 'bad character')
})

t.test('parseSubprotocols', async (t) => {
  t.same(parseSubprotocols(undefined), [])
  t.same(parseSubprotocols(''), [])
  t.same(parseSubprotocols('chat'), ['chat'])
  t.same(parseSubprotocols(' chat ,  superchat,,  '), ['chat', 'superchat'])
  t.same(parseSubprotocols(['a, b', 'c']), ['a', 'b', 'c'], 'every header line is used')
})

t.test('checkSameOrigin', async (t) => {
  const req = (origin: string | undefined, host: string | null = 'example.com:8080') =>
    ({ headers: { ...(origin === undefined ? {} : { origin }), ...(host === null ? {} : { host }) } })
  const same: Array<[origin: string | undefined, host: string, why?: string]> = [
    [undefined, 'example.com:8080', 'no Origin header'],
    ['http://example.com:8080', 'example.com:8080'],
    ['https://EXAMPLE.com:8080', 'example.com:8080', 'the same explicit port whatever the scheme; hostnames case-insensitive'],
    ['http://example.com:8080', 'Example.COM:8080', 'Host compared case-insensitively'],
    ['http://example.com', 'example.com'],
    ['https://example.com', 'example.com'],
    ['ws://example.com', 'example.com'],
    ['wss://example.com', 'example.com'],
    // Default ports: an Origin without a port names its scheme's default.
    ['http://localhost', 'localhost:80'],
    ['https://localhost', 'localhost:443'],
    ['ws://localhost', 'localhost:80'],
    ['wss://localhost', 'localhost:443'],
    ['http://localhost:80', 'localhost', 'an explicit default port in the Origin'],
    ['https://localhost:443', 'localhost:443'],
    ['http://localhost', 'localhost:', 'an empty Host port is the default'],
    ['http://localhost', 'localhost:080', 'leading zeroes in the Host port'],
    ['http://[::1]:3000', '[::1]:3000', 'IPv6 literal'],
    ['http://[::1]', '[::1]:80'],
    ['https://[::1]', '[::1]'],
    ['http://[0:0::1]', '[::1]:80', 'IPv6 literals compare normalised'],
    ['http://[::ABCD]', '[::abcd]'],
    ['http://127.0.0.1', '127.0.0.1:80']
  ]
  for (const [origin, host, why] of same) t.ok(checkSameOrigin(req(origin, host)), why ?? `${String(origin)} / ${host}`)
  const other: Array<[origin: string, host: string | null, why?: string]> = [
    ['http://example.com', 'example.com:8080', 'port differs'],
    ['http://evil.com:8080', 'example.com:8080'],
    ['https://localhost', 'localhost:80', '443 is not 80'],
    ['http://localhost', 'localhost:443', '80 is not 443'],
    ['wss://localhost', 'localhost:80'],
    ['http://localhost:8080', 'localhost', 'a Host without a port means the default port of the Origin\'s scheme'],
    ['https://localhost:80', 'localhost', 'an Origin on the other scheme\'s default port'],
    ['http://localhost:443', 'localhost'],
    ['http://example.com', 'example.com:65616', 'a Host port past 65535 does not wrap to 80'],
    ['http://example.com', 'example.com:80:80', 'two ports'],
    ['http://example.com', 'example.com:http'],
    ['http://example.com', 'evil.com@example.com', 'userinfo in Host'],
    ['http://example.com', 'example.com/path'],
    ['http://example.com', 'example.com\\'],
    ['http://[::1]', '[::1', 'an unclosed IPv6 literal'],
    ['http://[::1]', '[::g]', 'not an IPv6 literal'],
    ['http://ex%zz.com', 'ex%zz.com', 'a name that is no URL host'],
    ['http://example.com', 'ex%zz.com'],
    ['http://[::1]:3000', '[::2]:3000'],
    ['http://example.com', ''],
    ['ftp://example.com', 'example.com', 'an Origin that is not http(s) or ws(s)'],
    ['file:///etc/passwd', 'example.com'],
    ['null', 'example.com:8080', 'opaque origin'],
    ['', 'example.com:8080', 'empty origin'],
    ['not a url', 'example.com:8080'],
    ['http://example.com:8080', null, 'no Host header']
  ]
  for (const [origin, host, why] of other) t.notOk(checkSameOrigin(req(origin, host)), why ?? `${origin} / ${String(host)}`)
})

t.test('header sanitising', async (t) => {
  t.equal(sanitizeHeaderValue('a\r\nSet-Cookie: x=1'), 'a  Set-Cookie: x=1')
  t.equal(sanitizeHeaderValue('a\u0000b\u007fc\td'), 'a b c d')
  t.equal(sanitizeHeaderValue(42), '42')
  t.equal(formatHeaderLines({ A: 'x', B: ['1', '2'], C: 3 }), 'A: x\r\nB: 1\r\nB: 2\r\nC: 3\r\n')
  t.throws(() => formatHeaderLines({ 'Bad\r\nName': 'x' }), TypeError)
  t.throws(() => formatHeaderLines({ '': 'x' }), TypeError)
})

/** Starts a raw TCP server whose connections go to `onSocket`; returns a connected client. */
async function rawPair (t: { teardown: (fn: () => unknown) => void }, onSocket: (socket: Socket) => void): Promise<Socket> {
  const server = createServer(onSocket)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  const client = connect(port, '127.0.0.1')
  t.teardown(() => { client.destroy() })
  await new Promise((resolve) => client.once('connect', resolve))
  return client
}

function readAll (socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    socket.once('error', reject)
  })
}

t.test('writeHttpResponse writes a complete response and closes', async (t) => {
  const client = await rawPair(t, (socket) => {
    writeHttpResponse(socket, 403, { 'X-Why': 'bad\r\nSet-Cookie: evil=1', Connection: 'keep-alive', 'Content-Length': '999' }, 'nope ✓')
  })
  const text = await readAll(client)
  const [head, body] = text.split('\r\n\r\n')
  const lines = head.split('\r\n')
  t.equal(lines[0], 'HTTP/1.1 403 Forbidden')
  t.ok(lines.includes('Connection: close'))
  t.ok(lines.includes('Content-Type: text/plain; charset=utf-8'))
  t.ok(lines.includes(`Content-Length: ${Buffer.byteLength('nope ✓')}`))
  t.ok(lines.includes('X-Why: bad  Set-Cookie: evil=1'), 'CR/LF replaced by spaces')
  t.notOk(lines.some((l) => l.startsWith('Set-Cookie')), 'no injected header line')
  t.equal(lines.filter((l) => /^connection:/i.test(l)).length, 1, 'caller cannot override Connection')
  t.equal(lines.filter((l) => /^content-length:/i.test(l)).length, 1, 'caller cannot override Content-Length')
  t.equal(body, 'nope ✓')
})

t.test('writeHttpResponse keeps a caller Content-Type and an unknown status', async (t) => {
  const client = await rawPair(t, (socket) => {
    writeHttpResponse(socket, 599, { 'content-type': 'application/json' }, Buffer.from('{}'))
  })
  const text = await readAll(client)
  t.match(text, /^HTTP\/1\.1 599 Unknown\r\n/)
  t.match(text, /\r\ncontent-type: application\/json\r\n/)
  t.notMatch(text, /text\/plain/)
  t.match(text, /\r\n\r\n\{\}$/)
})

t.test('writeHttpResponse destroys a socket whose peer never closes', async (t) => {
  let serverSide: Socket | undefined
  const client = await rawPair(t, (socket) => {
    serverSide = socket
    socket.on('end', () => {}) // allowHalfOpen is false here, but be explicit
    writeHttpResponse(socket, 400, {}, 'bad')
  })
  client.on('data', () => {})
  await new Promise((resolve) => client.once('end', resolve))
  // The client does not end its side; the server must still go away.
  await new Promise((resolve) => serverSide?.destroyed === true ? resolve(null) : serverSide?.once('close', resolve))
  t.ok(serverSide?.destroyed)
})

t.test('writeHttpResponse absorbs a connection reset by the peer after the response', async (t) => {
  let serverSide: Socket | undefined
  const server = createServer((socket) => {
    serverSide = socket
    writeHttpResponse(socket, 400, {}, 'bad')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  // Half-open, so reading the server's FIN does not make the client send its own.
  const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => { client.destroy() })
  const response = await readAll(client)
  t.match(response, /^HTTP\/1\.1 400 Bad Request\r\n/)
  // The server is still reading (waiting for our FIN); a reset makes that read fail with ECONNRESET,
  // an 'error' with no listener but writeHttpResponse's: without it the process would crash here.
  const serverClosed = new Promise<boolean>((resolve) => serverSide?.once('close', resolve))
  client.resetAndDestroy()
  t.equal(await serverClosed, true, 'the server socket closed because of an error, which was absorbed')
})

t.test('writeHttpResponse on a destroyed or ended stream does not throw', async (t) => {
  const destroyed = new PassThrough()
  destroyed.destroy()
  t.doesNotThrow(() => writeHttpResponse(destroyed, 400))
  const ended = new PassThrough()
  ended.end()
  t.doesNotThrow(() => writeHttpResponse(ended, 400))
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(ended.destroyed)
})

t.test('endSocketSoon destroys a half-open generic duplex after the linger time', async (t) => {
  const written: Buffer[] = []
  const duplex = new Duplex({
    allowHalfOpen: true,
    read () {},
    write (chunk, _enc, cb) { written.push(chunk); cb() }
  })
  const keepAlive = setTimeout(() => {}, 5000) // the linger timer is unref'd
  endSocketSoon(duplex, 20)
  await new Promise((resolve) => duplex.once('close', resolve))
  clearTimeout(keepAlive)
  t.ok(duplex.destroyed)
  t.ok(duplex.writableEnded)
})

t.test('endSocketSoon destroys a duplex whose peer ended first once the response is flushed', async (t) => {
  // The peer has half-closed (its end was read) while the response is still being written: the
  // stream must go away when the write finishes, long before the linger time.
  const duplex = new Duplex({
    allowHalfOpen: true,
    read () {},
    write (_chunk, _enc, cb) { setImmediate(cb) }
  })
  duplex.push(null)
  duplex.write('HTTP/1.1 400 Bad Request\r\n\r\n')
  const ended = new Promise((resolve) => duplex.once('end', resolve))
  endSocketSoon(duplex, 60_000)
  await ended
  t.equal(duplex.destroyed, false, "still flushing when the peer's end is read")
  await new Promise((resolve) => duplex.once('close', resolve))
  t.ok(duplex.writableFinished, 'destroyed after the response was flushed')
})

t.test('endSocketSoon leaves an already destroyed stream alone', async (t) => {
  const destroyed = new PassThrough()
  destroyed.destroy()
  t.doesNotThrow(() => endSocketSoon(destroyed))
  t.equal(destroyed.listenerCount('error') + destroyed.listenerCount('close') + destroyed.listenerCount('end'), 0, 'no listener, no timer')
})
