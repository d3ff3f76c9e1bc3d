// Loaded into a stress target with `--import` (and `--expose-gc`): answers the harness's request
// for a garbage collection over IPC, so memory is compared after GC, and exits with the harness.
// It adds nothing to the server's own work.

/** A question from the harness. */
export interface ProbeQuery {
  probe: 'gc'
  id: number
}

/** The answer, once two collections ran: the JS heap in use then, in bytes. */
export interface ProbeAnswer {
  probe: 'gc-done'
  id: number
  heapUsed: number
}

const gc = (globalThis as { gc?: () => void }).gc

process.on('message', (message: ProbeQuery) => {
  if (message?.probe !== 'gc') return
  // Two collections with a turn of the event loop between them, so finalised objects go too.
  gc?.()
  setImmediate(() => {
    gc?.()
    const answer: ProbeAnswer = { probe: 'gc-done', id: message.id, heapUsed: process.memoryUsage().heapUsed }
    process.send?.(answer)
  })
})
process.on('disconnect', () => process.exit(0))
