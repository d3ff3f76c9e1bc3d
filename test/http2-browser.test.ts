import t from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyServerOptions } from 'fastify'
import { chromium, type BrowserContext } from 'playwright-core'
import { buildChatApp } from '../examples/chat.js'
import { fastifyWsconn } from '../lib/plugin/index.js'
import { selfSignedCert } from './helpers/tls.js'

const CHROMIUM = '/usr/bin/chromium'
const pair = selfSignedCert()
// Debian's chromium package (.ci/run installs it) and openssl for the self-signed certificate.
const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} not found: install Debian's chromium package (apt-get install chromium) to run the browser test`
  : pair === undefined ? 'openssl not found: cannot create a self-signed certificate for the HTTPS server' : false

/** Headless Chromium that accepts the self-signed certificate, with a fresh profile removed afterwards. */
async function launch (t: { teardown: (fn: () => unknown) => void }): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'wsconn-chromium-'))
  t.teardown(() => rmSync(profile, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--ignore-certificate-errors',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'
    ]
  })
  t.teardown(() => context.close())
  return context
}

/** An HTTP/2 server with HTTP/1.1 turned off: a WebSocket that opens can only be RFC 8441. */
function http2Only (): FastifyServerOptions {
  return { http2: true, https: { ...pair!, allowHTTP1: false } } as unknown as FastifyServerOptions
}

const PAGE = `<!doctype html><title>h2</title><script>
globalThis.run = () => new Promise((resolve, reject) => {
  const ws = new WebSocket(\`wss://\${location.host}/echo\`)
  ws.binaryType = 'arraybuffer'
  const got = []
  ws.onerror = () => reject(new Error('websocket error'))
  ws.onopen = () => { ws.send('hello over h2'); ws.send(new Uint8Array([1, 2, 255])) }
  ws.onmessage = (event) => {
    got.push(typeof event.data === 'string' ? event.data : [...new Uint8Array(event.data)])
    if (got.length === 2) ws.close(1000, 'done')
  }
  ws.onclose = (event) => resolve({ got, code: event.code, protocol: performance.getEntriesByType('navigation')[0].nextHopProtocol })
})
</script>`

t.test('Chromium opens wss:// over the page\'s HTTP/2 connection (RFC 8441): echo text and binary, close 1000', { skip }, async (t) => {
  const app = Fastify(http2Only())
  t.teardown(() => app.close())
  await app.register(fastifyWsconn)
  const seen: string[] = []
  app.get('/', async (_request, reply) => await reply.type('text/html').send(PAGE))
  app.get('/echo', { websocket: true }, async (conn, request) => {
    // The iteration ends without an error only on the peer's close frame.
    for await (const message of conn) await conn.writeMessage(message.type, message.data)
    seen.push(request.raw.httpVersion)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `https://localhost:${(app.server.address() as AddressInfo).port}`
  const context = await launch(t)
  const page = await context.newPage()
  await page.goto(`${base}/`)
  const result = await page.evaluate(() => (globalThis as unknown as { run: () => Promise<unknown> }).run())
  t.same(result, { got: ['hello over h2', [1, 2, 255]], code: 1000, protocol: 'h2' })
  t.same(seen, ['2.0'], 'the server saw the close frame on an HTTP/2 stream')
})

t.test('the typed chat example works over HTTP/2 in Chromium', { skip }, async (t) => {
  const app = await buildChatApp(http2Only())
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `https://localhost:${(app.server.address() as AddressInfo).port}`
  const context = await launch(t)
  const alice = await context.newPage()
  await alice.goto(`${base}/?nick=alice`)
  await alice.locator('#log li', { hasText: 'alice joined' }).first().waitFor({ timeout: 15_000 })
  const bob = await context.newPage()
  await bob.goto(`${base}/?nick=bob`)
  await alice.locator('#log li', { hasText: 'bob joined' }).first().waitFor({ timeout: 15_000 })
  await alice.fill('#send input[name=text]', 'hello over h2')
  await alice.press('#send input[name=text]', 'Enter')
  await bob.locator('#log li', { hasText: 'hello over h2' }).first().waitFor({ timeout: 15_000 })
  t.equal(await bob.evaluate(() => (performance.getEntries()[0]!.toJSON() as { nextHopProtocol: string }).nextHopProtocol), 'h2')
})
