// The chat example's page driven in headless Chromium over a real TCP server: its forms, its
// guards against sending early and joining twice, its nickname pattern, rooms, the member list,
// the connection state, refusals explained, and reconnection after a server restart.
import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import type { BrowserContext, Page } from 'playwright-core'
import type { FastifyInstance } from 'fastify'
import { buildChatApp, JoinQuery } from '../examples/chat.js'
import { launchChromium, skipWithoutChromium as skip, waitForLine, watchTrouble, type PageTrouble } from './helpers/browser.js'
import { closeOf, messageOf, openWs } from './helpers/plugin.js'

/** A chat app listening on a free loopback port (or `port`); closed after the test. */
async function startChat (t: Test, port = 0): Promise<{ app: FastifyInstance, base: string }> {
  const app = await buildChatApp()
  t.teardown(() => app.close())
  await app.listen({ port, host: '127.0.0.1' })
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

/** A new tab whose WebSocket constructions are counted in `window.socketsMade`, with its trouble recorded. */
async function openTab (context: BrowserContext, url: string): Promise<{ page: Page, trouble: PageTrouble }> {
  const page = await context.newPage()
  await page.addInitScript(() => {
    const scope = globalThis as unknown as { WebSocket: typeof WebSocket, socketsMade: number }
    const Native = scope.WebSocket
    scope.socketsMade = 0
    scope.WebSocket = class extends Native {
      constructor (...args: ConstructorParameters<typeof WebSocket>) {
        super(...args)
        scope.socketsMade++
      }
    }
  })
  const trouble = watchTrouble(page)
  await page.goto(url)
  return { page, trouble }
}

const socketsMade = async (page: Page): Promise<number> =>
  await page.evaluate(() => (globalThis as unknown as { socketsMade: number }).socketsMade)

/** Resolves once the connection state shown is `name`; returns its text. */
async function stateOf (page: Page, name: string): Promise<string> {
  // Name and text read together, in the page (a string: this project compiles without the DOM types).
  const check = `(() => { const state = document.getElementById('state'); return state.dataset.state === ${JSON.stringify(name)} && state.textContent })()`
  const text = await page.waitForFunction(check, undefined, { timeout: 15_000 })
  return await text.jsonValue() as string
}

/** Resolves once the member list shows exactly `names` (sorted). */
async function waitForMembers (page: Page, names: string[]): Promise<void> {
  const shown = "JSON.stringify([...document.querySelectorAll('#members li')].map((item) => item.textContent))"
  await page.waitForFunction(`${shown} === ${JSON.stringify(JSON.stringify(names))}`, undefined, { timeout: 15_000 })
}

/** Submits the form `selector` `times` times in one task, as a script or a double click could. */
async function submit (page: Page, selector: string, times = 1): Promise<void> {
  await page.locator(selector).evaluate((form, count) => {
    for (let i = 0; i < count; i++) (form as unknown as { requestSubmit: () => void }).requestSubmit()
  }, times)
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#send input[name=text]', text)
  await page.press('#send input[name=text]', 'Enter')
}

async function logText (page: Page): Promise<string> {
  return await page.locator('#log').innerText()
}

function assertNoTrouble (t: Test, trouble: PageTrouble, name: string): void {
  t.same(trouble.errors, [], `${name}: no uncaught error on the page`)
  t.same(trouble.console, [], `${name}: no console warning or error`)
}

function assertOnlyRefusals (t: Test, trouble: PageTrouble, name: string, expected: RegExp[]): void {
  t.same(trouble.errors, [], `${name}: no uncaught error on the page`)
  t.equal(trouble.console.length, expected.length, `${name}: ${expected.length} console messages`)
  expected.forEach((pattern, i) => t.match(trouble.console[i], pattern, `${name}: console message ${i + 1} is the refusal`))
}

t.test('the forms hide and show; sending before joining and joining twice do nothing harmful', { skip }, async (t) => {
  const { app, base } = await startChat(t)
  const context = await launchChromium(t)
  const { page, trouble } = await openTab(context, `${base}/`)

  t.ok(await page.locator('#join').isVisible(), 'the join form shows')
  t.notOk(await page.locator('#send').isVisible(), 'the send form is hidden before joining')
  t.ok(await page.locator('#send input[name=text]').isDisabled(), 'and its input is disabled')
  t.equal(await page.locator('#state').getAttribute('data-state'), 'idle')

  // A script (or an old bookmarklet) submitting the send form before any socket exists.
  await submit(page, '#send')
  t.equal(await socketsMade(page), 0)

  // Two submits in one task, faster than any network round trip.
  await page.fill('#join input[name=nick]', 'alice')
  await submit(page, '#join', 2)
  await page.waitForFunction("!['idle', 'checking', 'connecting'].includes(document.getElementById('state').dataset.state)")
  t.equal(await socketsMade(page), 1, 'the page made one socket')
  t.match(await stateOf(page, 'open'), /Connected to lobby as alice/)
  await waitForMembers(page, ['alice'])
  // A message through the one socket proves the server saw the join; a second one would have come first.
  await say(page, 'only once')
  await waitForLine(page, 'only once')
  t.equal(await socketsMade(page), 1, 'the page made one socket')
  t.equal(app.websocketConnections.size, 1, 'the server has one connection')
  t.equal((await logText(page)).split('alice joined').length - 1, 1, 'one join line')
  t.notOk(await page.locator('#join').isVisible(), 'the join form hides once joined')
  t.ok(await page.locator('#send').isVisible(), 'the send form shows once joined')

  // Joining again while joined does nothing either.
  await submit(page, '#join')
  t.equal(await socketsMade(page), 1)

  await page.click('#leave')
  t.match(await stateOf(page, 'closed'), /^Left lobby \(1000/)
  await waitForLine(page, 'you left lobby')
  t.ok(await page.locator('#join').isVisible(), 'the join form is back after leaving')
  t.notOk(await page.locator('#send').isVisible(), 'the send form is hidden again')
  t.equal(await page.locator('#members li').count(), 0, 'no members shown once out of the room')
  assertNoTrouble(t, trouble, 'the page')
})

t.test('the name patterns are valid under the v flag, match the server schema, and stop bad names', { skip }, async (t) => {
  const { base } = await startChat(t)
  const context = await launchChromium(t)
  const { page, trouble } = await openTab(context, `${base}/`)

  for (const field of ['nick', 'room'] as const) {
    const input = page.locator(`#join input[name=${field}]`)
    const pattern = await input.getAttribute('pattern') ?? ''
    t.equal(`^${pattern}$`, JoinQuery.properties[field].pattern, `the ${field} pattern is the server's`)
    t.equal(Number(await input.getAttribute('maxlength')), JoinQuery.properties[field].maxLength, `the ${field} length is the server's`)
    const compiles = await page.evaluate((source) => {
      try {
        return new RegExp(source, 'v') instanceof RegExp
      } catch {
        return false
      }
    }, pattern)
    t.ok(compiles, `the ${field} pattern compiles with the v flag`)
    // The browser and the server (Ajv, u flag) agree on these.
    const server = new RegExp(JoinQuery.properties[field].pattern ?? '', 'u')
    for (const value of ['ok_name-1', 'no spaces', 'a-b', 'x]y', 'é', '_']) {
      await input.fill(value)
      t.equal(await input.evaluate((element) => (element as unknown as { checkValidity: () => boolean }).checkValidity()), server.test(value), `${field} ${JSON.stringify(value)}`)
    }
  }

  await page.fill('#join input[name=nick]', 'bad nick')
  await page.fill('#join input[name=room]', 'lobby')
  await page.click('#join button')
  t.equal(await page.locator('#state').getAttribute('data-state'), 'idle', 'a bad nickname never starts a join')
  t.equal(await socketsMade(page), 0)
  assertNoTrouble(t, trouble, 'the page')
})

t.test('pages in one room see each other and who is there; another room sees nothing of it', { skip }, async (t) => {
  const { base } = await startChat(t)
  const context = await launchChromium(t)
  const alice = await openTab(context, `${base}/?nick=alice&room=dev`)
  t.match(await stateOf(alice.page, 'open'), /Connected to dev as alice/)
  const bob = await openTab(context, `${base}/`)
  await bob.page.fill('#join input[name=nick]', 'bob')
  await bob.page.fill('#join input[name=room]', 'dev')
  await bob.page.click('#join button')
  const carol = await openTab(context, `${base}/?nick=carol&room=ops`)
  t.match(await stateOf(carol.page, 'open'), /Connected to ops as carol/)

  await waitForMembers(bob.page, ['alice', 'bob'])
  await waitForMembers(alice.page, ['alice', 'bob'])
  await waitForMembers(carol.page, ['carol'])

  await say(alice.page, 'hi dev')
  await waitForLine(bob.page, 'hi dev')
  // Carol's own line comes back after anything sent to her earlier, so "hi dev" would be there by now.
  await say(carol.page, 'hi ops')
  await waitForLine(carol.page, 'hi ops')
  await say(bob.page, 'still dev')
  await waitForLine(alice.page, 'still dev')
  const carolLog = await logText(carol.page)
  t.notMatch(carolLog, /hi dev|still dev|alice|bob/, 'nothing of room dev reaches room ops')
  t.notMatch(await logText(alice.page), /hi ops|carol/, 'nothing of room ops reaches room dev')
  t.equal(await alice.page.locator('#log li.message b').first().textContent(), 'alice')

  // A nickname is per room: carol's name is free in dev.
  const carolInDev = await openTab(context, `${base}/?nick=carol&room=dev`)
  await waitForMembers(alice.page, ['alice', 'bob', 'carol'])
  await carolInDev.page.close()
  await waitForMembers(alice.page, ['alice', 'bob'])

  await bob.page.close()
  await waitForLine(alice.page, 'bob left')
  await waitForMembers(alice.page, ['alice'])
  await waitForMembers(carol.page, ['carol'])
  for (const [name, tab] of Object.entries({ alice, bob, carol, carolInDev })) assertNoTrouble(t, tab.trouble, name)
})

t.test("a refused join shows the server's reason, not just 1006", { skip }, async (t) => {
  const { app, base } = await startChat(t)
  const context = await launchChromium(t)
  const alice = await openTab(context, `${base}/?nick=alice`)
  await stateOf(alice.page, 'open')

  // The nickname is taken: the check before the socket says so, and no socket is made.
  const second = await openTab(context, `${base}/`)
  await second.page.fill('#join input[name=nick]', 'alice')
  await second.page.click('#join button')
  t.equal(await stateOf(second.page, 'refused'), 'Refused: the nickname alice is taken in lobby')
  await waitForLine(second.page, 'refused: the nickname alice is taken in lobby')
  t.equal(await socketsMade(second.page), 0)
  t.ok(await second.page.locator('#join').isVisible(), 'the join form is back to try another name')

  // A name the form would refuse, given in the address: the server's schema says what is wrong.
  const bad = await openTab(context, `${base}/?nick=${encodeURIComponent('no spaces')}`)
  t.equal(await stateOf(bad.page, 'refused'), 'Refused: a nickname is 1 to 24 letters, digits, _ or -')

  // The check passed but the handshake is refused (someone took the name in between): the browser
  // reports 1006 only, and the page asks the server why.
  const raced = await openTab(context, `${base}/`)
  await raced.page.route('**/chat/check?*', async (route) => {
    await route.fulfill({ status: 200, contentType: 'application/json', body: '{"ok":true}' })
  }, { times: 1 })
  await raced.page.fill('#join input[name=nick]', 'alice')
  await raced.page.click('#join button')
  t.equal(await stateOf(raced.page, 'refused'), 'Refused: the nickname alice is taken in lobby')
  t.equal(await socketsMade(raced.page), 1, 'the socket was tried')
  t.equal(app.websocketConnections.size, 1, 'and refused by the server')
  assertNoTrouble(t, alice.trouble, 'alice')
  // Chromium itself logs every refused request and handshake on the console; nothing else went wrong.
  assertOnlyRefusals(t, second.trouble, 'second', [/status of 409 \(Conflict\)/])
  assertOnlyRefusals(t, bad.trouble, 'bad', [/status of 400 \(Bad Request\)/])
  assertOnlyRefusals(t, raced.trouble, 'raced', [/WebSocket connection to .* failed: .*409/, /status of 409 \(Conflict\)/])
})

t.test('close codes show with their reason, and a restarted server is rejoined', { skip }, async (t) => {
  const first = await startChat(t)
  const port = (first.app.server.address() as AddressInfo).port
  const context = await launchChromium(t)
  const alice = await openTab(context, `${first.base}/?nick=alice&room=dev`)
  await stateOf(alice.page, 'open')

  // A message outside the schema: the server closes with 1007 and says why; no retry.
  const bob = await openTab(context, `${first.base}/?nick=bob&room=dev`)
  await stateOf(bob.page, 'open')
  await bob.page.evaluate(() => { (globalThis as unknown as { chatSocket: WebSocket }).chatSocket.send('{"nope":true}') })
  t.match(await stateOf(bob.page, 'closed'), /^Closed \(1007: .+\)$/)
  await waitForLine(bob.page, 'disconnected (1007: ')
  await waitForLine(alice.page, 'bob left')

  // The server shuts down (1001) and comes back on the same port: the page rejoins by itself.
  // While it shuts down it answers 503, which the page takes as "try again", not as a refusal.
  const closing = first.app.close()
  t.match(await stateOf(alice.page, 'reconnecting'), /^Reconnecting in \d+ s \(attempt \d of 5\): /)
  await waitForLine(alice.page, 'disconnected (1001: ')
  await closing
  const second = await startChat(t, port)
  t.match(await stateOf(alice.page, 'open'), /Connected to dev as alice/)
  await waitForMembers(alice.page, ['alice'])
  t.equal(second.app.websocketConnections.size, 1)
  await say(alice.page, 'back again')
  await waitForLine(alice.page, 'back again')
  t.same(alice.trouble.errors, [], 'alice: no uncaught error')
  // How many checks found the server shutting down (503) or gone depends on timing; Chromium logs each.
  for (const message of alice.trouble.console) {
    t.match(message, /^Failed to load resource: (the server responded with a status of 503|net::ERR_CONNECTION_REFUSED)/, 'alice: only failed checks while the server was away')
  }
  t.same(bob.trouble.errors, [], 'bob: no uncaught error')
})

for (const together of [false, true]) {
  t.test(`joins racing for one nickname let exactly one in; the others hear why${together ? ' (all past the check at once)' : ''}`, async (t) => {
    const app = await buildChatApp()
    t.teardown(() => app.close())
    const racers = 8
    if (together) {
      // Held until all have arrived, so all pass the route's nickname check before any enters the
      // room: the handler's own check is what keeps the others out.
      let release: () => void
      const arrived = new Promise<void>((resolve) => { release = resolve })
      let count = 0
      app.addHook('preHandler', async (request) => {
        if (request.url.startsWith('/chat?') && ++count === racers) release()
        await arrived
      })
    }
    await app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    const url = `${base.replace('http', 'ws')}/chat?nick=dup`
    // Each either is refused by the hook (409) or gets past it together with another one and is
    // closed by the handler (1008), or wins and hears its own join.
    const outcomes = await Promise.all(Array.from({ length: racers }, async () => {
      try {
        const ws = await openWs(url, { origin: base })
        return await Promise.race([
          messageOf(ws).then((first) => ({ ws, first: JSON.parse(first) as unknown })),
          closeOf(ws).then((closed) => ({ ws, closed }))
        ])
      } catch (err) {
        return { refused: err as { status: number, body: string } }
      }
    }))
    const winners = outcomes.filter((outcome) => 'first' in outcome)
    t.equal(winners.length, 1, 'one connection is in the room')
    if (together) t.equal(outcomes.filter((outcome) => 'closed' in outcome).length, racers - 1, 'the others were closed by the handler')
    t.match(winners[0]?.first, { kind: 'join', from: 'dup' })
    for (const outcome of outcomes) {
      if ('refused' in outcome) {
        t.equal(outcome.refused.status, 409)
        t.equal(JSON.parse(outcome.refused.body).message, 'the nickname dup is taken in lobby')
      } else if ('closed' in outcome) {
        t.same(outcome.closed, { code: 1008, reason: 'the nickname dup is taken in lobby' })
      }
    }
    // The losers left nothing behind: a newcomer sees the winner only.
    const observer = await openWs(`${base.replace('http', 'ws')}/chat?nick=observer`, { origin: base })
    t.match(JSON.parse(await messageOf(observer)), { kind: 'join', from: 'observer' })
    t.same(JSON.parse(await messageOf(observer)), { kind: 'members', room: 'lobby', members: ['dup', 'observer'] })
    for (const ws of [observer, winners[0]!.ws]) {
      ws.close()
      await closeOf(ws)
    }
  })
}
