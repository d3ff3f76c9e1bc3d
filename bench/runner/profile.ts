import { readFileSync } from 'node:fs'
import path from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Self time of one function in a profile. */
export interface HotFunction {
  name: string
  location: string
  selfMs: number
  share: number
}

/** The functions with the most self time in a V8 .cpuprofile, heaviest first. */
export function topSelfTime (file: string, root: string, limit = 15): { totalMs: number, functions: HotFunction[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]))
  const selfByFunction = new Map<string, HotFunction>()
  let totalUs = 0
  // As DevTools does: a sample lasts until the next one (timeDeltas[i + 1]); the last until endTime.
  let time = profile.startTime
  const times = profile.timeDeltas.map((delta) => (time += delta))
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byNode.get(profile.samples[i]!)
    const delta = (i + 1 < times.length ? times[i + 1]! : profile.endTime) - times[i]!
    if (node === undefined || delta <= 0) continue
    totalUs += delta
    const frame = node.callFrame
    const location = locate(frame, root)
    const key = `${frame.functionName}@${location}`
    const entry = selfByFunction.get(key) ?? { name: frame.functionName === '' ? '(anonymous)' : frame.functionName, location, selfMs: 0, share: 0 }
    entry.selfMs += delta / 1000
    selfByFunction.set(key, entry)
  }
  const functions = [...selfByFunction.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, limit)
  for (const f of functions) f.share = totalUs > 0 ? f.selfMs * 1000 / totalUs : 0
  return { totalMs: totalUs / 1000, functions }
}

/** A profile's summary as text lines. */
export function profileText (file: string, root: string): string {
  const { totalMs, functions } = topSelfTime(file, root)
  const lines = functions.map((f) => `  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.name}  ${f.location}`)
  return [`${path.relative(root, file)}: ${totalMs.toFixed(0)} ms sampled, top self time:`, ...lines].join('\n')
}

// Files transpiled by tsx have no useful line numbers (the profile sees the generated code), so
// they are named by file only; Node's own and plain-JS files keep their line.
function locate (frame: ProfileNode['callFrame'], root: string): string {
  if (frame.url === '') return ''
  const plain = frame.url.startsWith('file://') ? frame.url.slice(7) : frame.url
  const relative = path.relative(root, plain)
  const name = relative.startsWith('..') ? plain : relative.replace(/^node_modules\//, '~/')
  return name.endsWith('.ts') ? name : `${name}:${frame.lineNumber + 1}`
}
