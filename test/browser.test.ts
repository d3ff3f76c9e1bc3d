import t from 'tap'
import type { AddressInfo } from 'node:net'
import { buildChatApp } from '../examples/chat.js'
import { launchChromium, skipWithoutChromium, waitForLine } from './helpers/browser.js'
import { closeOf, messageOf, openWs } from './helpers/plugin.js'

const skip = skipWithoutChromium

t.test('a browser chats through the example app', { skip }, async (t) => {
  const app = await buildChatApp()
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const context = await launchChromium(t)
  const alice = await context.newPage()
  await alice.goto(`${base}/?nick=alice`)
  await waitForLine(alice, 'alice joined')
  const bob = await context.newPage()
  await bob.goto(`${base}/`)
  await bob.fill('#join input[name=nick]', 'bob')
  await bob.click('#join button')
  await waitForLine(bob, 'bob joined')
  await waitForLine(alice, 'bob joined')

  // Typed in one browser tab, it shows up in the other.
  await alice.fill('#send input[name=text]', 'hello from alice')
  await alice.press('#send input[name=text]', 'Enter')
  await waitForLine(bob, 'hello from alice')
  t.equal(await bob.locator('#log li.message b').first().textContent(), 'alice')

  // Chromium offers permessage-deflate and the chat route accepts it; messages above went compressed.
  const extensions = await alice.evaluate(() => (globalThis as unknown as { chatSocket: WebSocket }).chatSocket.extensions)
  t.match(extensions, /^permessage-deflate/, 'the browser negotiated compression')
  await alice.fill('#send input[name=text]', 'compressed '.repeat(40))
  await alice.press('#send input[name=text]', 'Enter')
  await waitForLine(bob, 'compressed '.repeat(40).trim())

  // A Node client on the same route talks with the browsers.
  const node = await openWs(`${base.replace('http', 'ws')}/chat?nick=node`, { origin: base })
  const joined = messageOf(node)
  t.match(JSON.parse(await joined), { kind: 'join', from: 'node' })
  // Then, to the newcomer only, who is in the room (the default one, as for the browsers).
  t.same(JSON.parse(await messageOf(node)), { kind: 'members', room: 'lobby', members: ['alice', 'bob', 'node'] })
  const echoed = messageOf(node)
  node.send(JSON.stringify({ text: 'hi browsers' }))
  t.match(JSON.parse(await echoed), { kind: 'message', from: 'node', text: 'hi browsers' })
  await waitForLine(alice, 'hi browsers')
  node.close()

  // Text that could be HTML stays text.
  await bob.fill('#send input[name=text]', '<img src=x onerror=alert(1)>')
  await bob.press('#send input[name=text]', 'Enter')
  await waitForLine(alice, '<img src=x onerror=alert(1)>')
  t.equal(await alice.locator('#log img').count(), 0)

  // A message outside the schema closes the browser's connection with 1007.
  await bob.evaluate(() => { (globalThis as unknown as { chatSocket: WebSocket }).chatSocket.send(JSON.stringify({ nope: true })) })
  await waitForLine(bob, 'disconnected (1007')
  await waitForLine(alice, 'bob left')
})

t.test('the chat route refuses a foreign origin, as a browser would see it', { skip }, async (t) => {
  const app = await buildChatApp()
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const context = await launchChromium(t)
  const page = await context.newPage()
  // A page from another origin (localhost is not 127.0.0.1 to the browser) tries to connect.
  await page.goto(`http://localhost:${port}/`)
  const outcome = await page.evaluate(async (target) => await new Promise<string>((resolve) => {
    const socket = new WebSocket(target)
    socket.onopen = () => resolve('open')
    socket.onclose = (event) => resolve(`closed ${event.code}`)
  }), `ws://127.0.0.1:${port}/chat?nick=mallory`)
  t.equal(outcome, 'closed 1006', 'the handshake was refused (403), which browsers report as 1006')
  const direct = await openWs(`ws://127.0.0.1:${port}/chat?nick=check`, { origin: `http://localhost:${port}` }).catch((err: { status: number }) => err)
  t.equal((direct as { status: number }).status, 403)
  const same = await openWs(`ws://127.0.0.1:${port}/chat?nick=same`, { origin: `http://127.0.0.1:${port}` })
  same.close()
  await closeOf(same)
})
