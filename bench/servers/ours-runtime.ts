import type { Upgrader as UpgraderClass, UpgraderOptions } from '../../lib/upgrader.js'
import type { PreparedMessage as PreparedMessageClass } from '../../lib/prepared-message.js'
import type { Hub as HubClass } from '../../lib/hub/hub.js'
import path from 'node:path'

/** The parts of this repository the bench server uses, loaded from source or from a tsc build. */
export interface OursRuntime {
  Upgrader: new (options?: UpgraderOptions) => UpgraderClass
  PreparedMessage: new (type: 1 | 2, data: Buffer) => PreparedMessageClass
  TextMessage: 1
  Hub: new () => HubClass
  /** Where lib/ was loaded from, for the report. */
  source: string
  /** The Fastify plugin, or why it cannot be used. */
  plugin: { fn: unknown, name: string } | { error: string }
}

const PLUGIN_EXPORTS = ['default', 'wsconn', 'fastifyWsconn', 'fastifyWebsocket']

/**
 * Loads lib/ from `root` (BENCH_OURS_ROOT, set by the runner to its tsc build; lib/ itself
 * otherwise). Specifiers are computed, so the typecheck does not depend on the plugin existing.
 */
export async function loadOurs (root = process.env.BENCH_OURS_ROOT ?? path.join(__dirname, '..', '..', 'lib')): Promise<OursRuntime> {
  const upgrader = await load(root, 'upgrader.js')
  const prepared = await load(root, 'prepared-message.js')
  const constants = await load(root, 'protocol/constants.js')
  const hub = await load(root, 'hub/hub.js')
  return {
    Upgrader: upgrader.Upgrader as OursRuntime['Upgrader'],
    PreparedMessage: prepared.PreparedMessage as OursRuntime['PreparedMessage'],
    TextMessage: constants.TextMessage as 1,
    Hub: hub.Hub as OursRuntime['Hub'],
    source: path.relative(path.join(__dirname, '..', '..'), root),
    plugin: await loadPlugin(root)
  }
}

/** module.exports of a CommonJS file (what both tsc and tsx produce here). */
async function load (root: string, file: string): Promise<Record<string, unknown>> {
  const mod = await import(path.join(root, file)) as Record<string, unknown>
  return (mod.default ?? mod) as Record<string, unknown>
}

async function loadPlugin (root: string): Promise<OursRuntime['plugin']> {
  let exports: Record<string, unknown>
  try {
    exports = await load(root, 'plugin/index.js')
  } catch (err) {
    const code = (err as { code?: string }).code
    return { error: code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' ? 'lib/plugin/index.ts not found' : `failed to load: ${(err as Error).message}` }
  }
  for (const name of PLUGIN_EXPORTS) {
    if (typeof exports[name] === 'function') return { fn: exports[name], name }
  }
  return { error: `lib/plugin/index.ts exports none of ${PLUGIN_EXPORTS.join(', ')}` }
}
