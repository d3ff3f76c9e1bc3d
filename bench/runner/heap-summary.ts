import { readFileSync } from 'node:fs'

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

/** Self size and count per "type:name" of the objects in a V8 .heapsnapshot. */
function tally (file: string): Map<string, { size: number, count: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const out = new Map<string, { size: number, count: number }>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!
    const name = type === 'object' || type === 'closure' || type === 'native' ? snap.strings[snap.nodes[i + nameAt]!]! : ''
    const key = name === '' ? `(${type})` : type === 'closure' ? `${name} (closure)` : name
    const entry = out.get(key) ?? { size: 0, count: 0 }
    entry.size += snap.nodes[i + sizeAt]!
    entry.count++
    out.set(key, entry)
  }
  return out
}

/**
 * What the heap gained between two snapshots, per connection: the object kinds (constructor
 * names; strings, arrays and code grouped by type) whose self size grew the most.
 */
export function heapGrowthText (before: string, after: string, connections: number, label: string, limit = 15): string {
  const a = tally(before)
  const b = tally(after)
  const rows = [...b].map(([name, { size, count }]) => {
    const base = a.get(name) ?? { size: 0, count: 0 }
    return { name, bytes: (size - base.size) / connections, count: (count - base.count) / connections }
  }).filter((r) => r.bytes > 0).sort((x, y) => y.bytes - x.bytes)
  const total = rows.reduce((sum, r) => sum + r.bytes, 0)
  const lines = rows.slice(0, limit).map((r) => `  ${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)} objects  ${r.name}`)
  return [`${label}: V8 heap growth per connection, ${(total / 1024).toFixed(2)} KiB in objects (self size), largest kinds:`, ...lines].join('\n')
}
