// Interoperability with gorilla/websocket itself: its client against our echo example (all three
// API paths), and our Dialer against its server. The Go peer is built from Debian's packages
// golang-go and golang-github-gorilla-websocket-dev, which .ci/run installs.
import t from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dial, BinaryMessage, TextMessage, CloseError } from '../lib/index.js'

const GOPATH = '/usr/share/gocode'
const haveGo = (() => {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' })
    return existsSync(join(GOPATH, 'src/github.com/gorilla/websocket'))
  } catch {
    return false
  }
})()

if (!haveGo) {
  t.test('gorilla/websocket interop', { skip: 'needs Go and Debian\'s golang-github-gorilla-websocket-dev (installed by .ci/run)' }, () => {})
} else {
  const peer = join(mkdtempSync(join(tmpdir(), 'gorilla-')), 'gorilla-peer')
  execFileSync('go', ['build', '-o', peer, 'main.go'], {
    cwd: join(process.cwd(), 'test/interop/gorilla'),
    env: { ...process.env, GO111MODULE: 'off', GOPATH, GOCACHE: join(tmpdir(), 'fastify-wsconn-gocache') },
    stdio: 'inherit'
  })

  const children: ChildProcess[] = []
  t.teardown(() => { for (const child of children) child.kill() })

  async function startAndReadPort (command: string, args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<number> {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    const [line] = await once(child.stdout!, 'data') as [Buffer]
    const match = pattern.exec(line.toString())
    if (match === null) throw new Error(`unexpected output: ${line.toString()}`)
    return Number(match[1])
  }

  for (const compress of [false, true]) {
    t.test(`gorilla client against the echo example${compress ? ' with permessage-deflate' : ''}`, async (t) => {
      const env = { ...process.env, PORT: '0', COMPRESSION: compress ? '1' : '0' }
      const port = await startAndReadPort(process.execPath, ['--import', 'tsx', 'examples/echo.ts'], /:(\d+)\/echo/, env)
      for (const path of ['/echo', '/echo/stream', '/echo/prepared']) {
        // With `compress`, the peer fails unless the server agreed to gorilla's no-context-takeover offer.
        const args = ['client', `ws://127.0.0.1:${port}${path}`, ...(compress ? ['compress'] : [])]
        const output = execFileSync(peer, args, { timeout: 60_000 }).toString()
        t.match(output, /^OK 19$/m, `${path}: every exchange, ping and the close handshake succeed`)
      }
    })
  }

  t.test('our Dialer against a gorilla server, with and without permessage-deflate', async (t) => {
    const port = await startAndReadPort(peer, ['server', 'compress'], /PORT (\d+)/)
    const compressed = await dial(`ws://127.0.0.1:${port}/echo`, { compression: { clientNoContextTakeover: true, serverNoContextTakeover: true, threshold: 0 } })
    t.equal(compressed.extensions, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover', 'gorilla agreed')
    for (const size of [0, 100, 70_000]) {
      const text = 'gorilla '.repeat(size / 8)
      await compressed.writeMessage(TextMessage, text)
      t.equal((await compressed.readMessage()).data.toString(), text, `compressed text of ${size} bytes echoed`)
    }
    await compressed.close()
    const conn = await dial(`ws://127.0.0.1:${port}/echo`)
    const sizes = [0, 125, 126, 65536, 1 << 20]
    for (const size of sizes) {
      const binary = Buffer.alloc(size, 0x5a)
      await conn.writeMessage(BinaryMessage, binary)
      const echoed = await conn.readMessage()
      t.equal(echoed.type, BinaryMessage)
      t.ok(echoed.data.equals(binary), `binary ${size} echoed`)
    }
    const writer = await conn.nextWriter(TextMessage)
    for (let i = 0; i < 50; i++) await writer.write('fragment ' + i + ';')
    await writer.close()
    const joined = Array.from({ length: 50 }, (_, i) => 'fragment ' + i + ';').join('')
    t.equal((await conn.readMessage()).data.toString(), joined, 'a fragmented message is reassembled by gorilla')

    const pong = new Promise<string>((resolve) => { conn.setPongHandler((data) => { resolve(data.toString()) }) })
    await conn.writeControl(9, 'hi gorilla')
    await conn.writeMessage(TextMessage, 'keep reading')
    await conn.readMessage()
    t.equal(await pong, 'hi gorilla', 'gorilla answers pings')

    await conn.close(1000, 'done')
    const error = await conn.readMessage().catch((e: unknown) => e)
    t.ok(error instanceof CloseError, 'reads end with the close')
    t.equal((error as CloseError).code, 1000, 'gorilla echoed our close code')
  })
}
