import { readFileSync } from 'node:fs'

/** One row of a snapshot diff: a node type and name, and how much more of it there is per connection. */
export interface GrowthRow {
  name: string
  perConnection: number
  countPerConnection: number
}

interface Totals { size: number, count: number }

/** Self sizes and counts of a heap snapshot's nodes, summed by "type name". */
function totalsByName (file: string): Map<string, Totals> {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[], node_types: [string[]] } }
    nodes: number[]
    strings: string[]
  }
  const fields = snapshot.snapshot.meta.node_fields
  const types = snapshot.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const totals = new Map<string, Totals>()
  const nodes = snapshot.nodes
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!
    // Strings are grouped by type only: their text would make every one its own row.
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number'
      ? type
      : `${type} ${snapshot.strings[nodes[i + nameAt]!]!.slice(0, 60)}`
    const row = totals.get(name) ?? { size: 0, count: 0 }
    row.size += nodes[i + sizeAt]!
    row.count++
    totals.set(name, row)
  }
  return totals
}

/** What grew between two snapshots, per connection, largest first. */
export function diffSnapshots (beforeFile: string, afterFile: string, connections: number, top: number): GrowthRow[] {
  const before = totalsByName(beforeFile)
  const rows: GrowthRow[] = []
  for (const [name, after] of totalsByName(afterFile)) {
    const was = before.get(name) ?? { size: 0, count: 0 }
    rows.push({ name, perConnection: (after.size - was.size) / connections, countPerConnection: (after.count - was.count) / connections })
  }
  rows.sort((a, b) => b.perConnection - a.perConnection)
  return rows.slice(0, top)
}
