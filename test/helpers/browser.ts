// Headless Chromium for the browser tests: Debian's chromium driven through playwright-core, with a
// fresh profile per test, and a record of everything a page reports as going wrong.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'

/** `false` when Chromium is installed, otherwise the reason to skip (tap's `skip` option). */
// Debian's chromium package; .ci/run installs it. Without it there is no browser to drive.
export const skipWithoutChromium: false | string = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found: install Debian's chromium package (apt-get install chromium) to run the browser test`

/** Starts headless Chromium with a fresh profile; both are gone after the test. */
export async function launchChromium (t: { teardown: (fn: () => unknown) => void }): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'wsconn-chromium-'))
  t.teardown(() => rmSync(profile, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'
    ]
  })
  t.teardown(() => context.close())
  return context
}

/** Resolves once the page's chat log has a line containing `text`. */
export async function waitForLine (page: Page, text: string): Promise<void> {
  await page.locator('#log li', { hasText: text }).first().waitFor({ timeout: 15_000 })
}

/** What a page reported as wrong: uncaught exceptions and console warnings or errors. */
export interface PageTrouble {
  /** Uncaught exceptions and unhandled rejections of the page's scripts. */
  errors: string[]
  /** Console messages of type `warning` or `error` (Chromium reports an invalid `pattern` there). */
  console: string[]
}

/** Starts recording what goes wrong on `page`; read the arrays when the test is done with it. */
export function watchTrouble (page: Page): PageTrouble {
  const trouble: PageTrouble = { errors: [], console: [] }
  page.on('pageerror', (error) => { trouble.errors.push(error.message) })
  page.on('console', (message) => {
    if (message.type() === 'warning' || message.type() === 'error') trouble.console.push(message.text())
  })
  return trouble
}
