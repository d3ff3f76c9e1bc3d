/** Something corked until the end of the current tick. */
export interface TickCorked {
  /** Called once when the tick that corked it ends. */
  uncorkAtTickEnd (): void
}

let scheduled = false
const corked: TickCorked[] = []

/**
 * Registers `item` to be uncorked when this tick ends, by one process-wide callback for every
 * connection written in the tick, so the frames an application writes in one burst leave in one
 * system call per connection. The caller corks its socket and registers it once per tick.
 */
export function uncorkAtTickEnd (item: TickCorked): void {
  corked.push(item)
  if (!scheduled) {
    scheduled = true
    process.nextTick(endTick)
  }
}

function endTick (): void {
  scheduled = false
  // Uncorking may run callbacks that write again: those join the list and are uncorked by this same loop.
  for (let i = 0; i < corked.length; i++) corked[i]!.uncorkAtTickEnd()
  corked.length = 0
}
