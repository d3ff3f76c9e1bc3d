import type { ServerKind } from '../shared/messages.js'
import type { Scenario } from './scenarios.js'
import type { Summary } from './stats.js'

/** How each server is named in the report. */
export const LABELS: Record<ServerKind, string> = { wsconn: 'ours (route)', 'wsconn-bare': 'ours (bare)', 'fastify-websocket': '@fastify/websocket', ws: 'ws', tcp: 'raw TCP' }

/** The comparisons every scenario prints, as [numerator, denominator]: ours through a route against the others, the bare Upgrader against raw TCP, and what the route costs over the bare Upgrader. */
export const RATIOS: Array<[ServerKind, ServerKind]> = [['wsconn', 'fastify-websocket'], ['wsconn', 'ws'], ['wsconn', 'tcp'], ['wsconn-bare', 'tcp'], ['wsconn', 'wsconn-bare']]

/** Ours' two paths in ratio headers. */
const SHORT: Partial<Record<ServerKind, string>> = { wsconn: 'route', 'wsconn-bare': 'bare' }

/** A ratio's header, e.g. "route/raw TCP". */
export function ratioName ([ours, other]: [ServerKind, ServerKind]): string {
  return `${SHORT[ours] ?? LABELS[ours]}/${SHORT[other] ?? LABELS[other]}`
}

export function scenarioName (s: Scenario): string {
  return `(${s.letter}) ${s.title}`
}

export function count (n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-'
}

export function fixed (n: number, digits: number): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-'
}

/** Milliseconds with three significant digits. */
export function ms (n: number): string {
  if (!Number.isFinite(n)) return '-'
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3)
}

export function percent (share: number): string {
  return Number.isFinite(share) ? `${Math.round(share * 100)}%` : '-'
}

export function times (r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a'
}

export function targetText (s: Scenario): string {
  const t = s.target
  if (t === undefined) return ''
  return t.min !== undefined ? `≥ ${t.min}× ${LABELS[t.against]}` : `≤ ${t.max ?? 0}× ${LABELS[t.against]}`
}

/** The cells of one server's row, in the column order of `columns(scenario)`. */
export function cells (s: Scenario, kind: ServerKind, m: Summary | undefined): string[] {
  if (m === undefined) return [LABELS[kind], 'not run']
  if (m.na !== undefined) return [LABELS[kind], 'n/a', ...Array<string>(columns(s).length - 3).fill(''), m.na]
  const note = noteFor(s, kind, m)
  if (s.metric === 'rss') return [LABELS[kind], fixed(m.rssPerConnKiB, 2), fixed(m.heapPerConnKiB, 2), note]
  return [LABELS[kind], count(m.msgsPerSec), fixed(m.mbPerSec, m.mbPerSec < 10 ? 2 : 1), ms(m.p50Ms), ms(m.p99Ms), percent(m.serverCpu), percent(m.genCpu), percent(m.otherCpu), note]
}

/** Column headers for a scenario's rows. */
export function columns (s: Scenario): string[] {
  if (s.metric === 'rss') return ['server', 'KiB/conn', 'of it JS heap', 'note']
  return ['server', s.mode === 'broadcast' ? 'deliveries/s' : s.key === 'h' ? 'handshakes/s' : 'msgs/s', 'MB/s', 'p50 ms', 'p99 ms', 'server CPU', 'gen CPU', 'other CPU', 'note']
}

function noteFor (s: Scenario, kind: ServerKind, m: Summary): string {
  const notes: string[] = []
  if (s.mode === 'broadcast') notes.push(`all in ${ms(m.timeToAllMs)} ms`)
  if (s.compress && kind === 'tcp') notes.push('no compression')
  else if (s.compress) notes.push(describeDeflate(m.extensions))
  if (m.error !== undefined) notes.push(`error: ${m.error}`)
  return notes.join('; ')
}

function describeDeflate (extensions: string): string {
  if (!/permessage-deflate/i.test(extensions)) return 'no deflate negotiated'
  return /server_no_context_takeover/i.test(extensions) ? 'deflate, no server context takeover' : 'deflate, server context takeover'
}
