import { createHook } from 'node:async_hooks'

/**
 * Counts the unref'd timers created from now on that are still pending (a test's own waits are
 * ref'd timers, so they do not count). Destroy hooks arrive asynchronously: poll `count`.
 */
export function unrefTimerWatch (t: { teardown: (fn: () => unknown) => void }): { count: () => number } {
  const live = new Map<number, { hasRef: () => boolean }>()
  const hook = createHook({
    init (id, type, _trigger, resource) { if (type === 'Timeout') live.set(id, resource as { hasRef: () => boolean }) },
    destroy (id) { live.delete(id) }
  })
  hook.enable()
  t.teardown(() => hook.disable())
  return { count: () => [...live.values()].filter((timer) => !timer.hasRef()).length }
}
