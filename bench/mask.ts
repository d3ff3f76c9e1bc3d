// Micro-benchmark of frame unmasking: the JavaScript loop against WebAssembly SIMD (copies included),
// in place and while copying into a second buffer. Run pinned to one core:
//   taskset -c 1 node --import tsx bench/mask.ts [--runs=7] [--sample-ms=20] [--offset=0] [--no-sweep]
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { SIMD_MASK_MIN } from '../lib/protocol/mask.js'
import { simdMasker } from '../lib/protocol/mask-simd.js'
import { median } from './runner/stats.js'
import { calibrate, throughput } from './mask/sample.js'
import { copyVariants, inPlaceVariants, type Variant } from './mask/variants.js'

/** The sizes the issue asks about. */
const SIZES = [125, 1024, 4096, 16384, 65536, 262144, 1048576]
/** More sizes at the small end, where the crossover lies. */
const CROSSOVER_SIZES = [64, 192, 256, 384, 512, 768, 2048]
/** Sizes whose WebAssembly path is swept over 256 start offsets within a page. */
const SWEEP_SIZES = [65536, 1048576]

interface Settings { runs: number, sampleMs: number, offset: number, sweep: boolean }

function parseArgs (argv: string[]): Settings {
  const settings: Settings = { runs: 7, sampleMs: 20, offset: 0, sweep: true }
  for (const arg of argv) {
    const [name, value] = arg.split('=')
    if (name === '--runs') settings.runs = Number(value)
    else if (name === '--sample-ms') settings.sampleMs = Number(value)
    else if (name === '--offset') settings.offset = Number(value)
    else if (name === '--no-sweep') settings.sweep = false
    else throw new Error(`unknown option ${arg}; see the comment at the top of bench/mask.ts`)
  }
  return settings
}

/** Per variant and size, the GB/s of every run. */
type Results = Map<string, Map<number, number[]>>

/**
 * Runs every variant at every size once per run, alternating variants within a run so that load from
 * other processes falls on all of them alike. Each sample is calibrated (and so warmed up) first.
 */
function measure (variants: Variant[], sizes: number[], settings: Settings): Results {
  const results: Results = new Map(variants.map((v) => [v.name, new Map(sizes.map((s) => [s, []]))]))
  const ops = new Map(variants.map((v) => [v.name, new Map(sizes.map((s) => {
    const op = v.prepare(s, settings.offset)
    return [s, { op, iterations: calibrate(op, settings.sampleMs) }]
  }))]))
  for (let run = 0; run < settings.runs; run++) {
    for (const size of sizes) {
      for (const variant of variants) {
        const { op, iterations } = ops.get(variant.name)!.get(size)!
        results.get(variant.name)!.get(size)!.push(throughput(op, iterations, size))
      }
    }
  }
  return results
}

/** The smallest size from which `candidate`'s median beats `baseline`'s at every larger size. */
function crossover (results: Results, sizes: number[], baseline: string, candidate: string): number | undefined {
  let from: number | undefined
  for (const size of [...sizes].sort((a, b) => b - a)) {
    if (median(results.get(candidate)!.get(size)!) < median(results.get(baseline)!.get(size)!)) break
    from = size
  }
  return from
}

function formatSize (size: number): string {
  if (size >= 1048576 && size % 1048576 === 0) return `${size / 1048576} MiB`
  if (size >= 1024 && size % 1024 === 0) return `${size / 1024} KiB`
  return `${size} B`
}

/** Largest (max - min) / median over the runs, in percent: how noisy a row was. */
function spread (runs: number[][]): string {
  const worst = Math.max(...runs.map((values) => (Math.max(...values) - Math.min(...values)) / median(values)))
  return `${Math.round(worst * 100)}%`
}

function printTable (title: string, results: Results, sizes: number[], ratio: [string, string]): void {
  const names = [...results.keys()]
  console.log(`\n${title} (GB/s, median of runs)\n`)
  console.log(`| size | ${names.join(' | ')} | ${ratio[1]} / ${ratio[0]} | spread |`)
  console.log(`| ---: | ${names.map(() => '---:').join(' | ')} | ---: | ---: |`)
  for (const size of [...sizes].sort((a, b) => a - b)) {
    const runs = names.map((n) => results.get(n)!.get(size)!)
    const medians = runs.map(median)
    const x = median(results.get(ratio[1])!.get(size)!) / median(results.get(ratio[0])!.get(size)!)
    console.log(`| ${formatSize(size)} | ${medians.map((m) => m.toFixed(2)).join(' | ')} | ${x.toFixed(2)}x | ${spread(runs)} |`)
  }
}

/**
 * WebAssembly in place at 256 start offsets 16 bytes apart, each in a fresh Buffer, best of three
 * short samples (this is about placement, not noise): glibc's copies are sensitive to it.
 */
function sweep (variant: Variant, size: number, settings: Settings): void {
  const values: number[] = []
  for (let offset = 0; offset < 4096; offset += 16) {
    const op = variant.prepare(size, offset)
    const iterations = calibrate(op, Math.max(1, settings.sampleMs / 4))
    values.push(Math.max(...[0, 1, 2].map(() => throughput(op, iterations, size))))
  }
  const middle = median(values)
  const slow = values.flatMap((v, i) => v < middle / 2 ? [i * 16] : [])
  const sorted = [...values].sort((a, b) => a - b)
  console.log(`| ${formatSize(size)} | ${sorted[0]!.toFixed(2)} | ${middle.toFixed(2)} | ${sorted.at(-1)!.toFixed(2)} | ` +
    `${slow.length} of 256${slow.length > 0 ? ` (${slow.join(', ')})` : ''} |`)
}

function cpuAffinity (): string {
  try {
    return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '?'
  } catch {
    return '?'
  }
}

function main (): void {
  const settings = parseArgs(process.argv.slice(2))
  console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? '?'}, CPUs allowed: ${cpuAffinity()}, load average ${os.loadavg()[0]!.toFixed(2)}`)
  console.log(`${settings.runs} runs, samples of >= ${settings.sampleMs} ms, payload at byteOffset ${settings.offset}, SIMD_MASK_MIN = ${SIMD_MASK_MIN}`)
  if (simdMasker === undefined) {
    console.log('WebAssembly SIMD is unavailable here: applyMask always runs the JS loop.')
    return
  }
  const sizes = [...SIZES, ...CROSSOVER_SIZES]

  const inPlace = measure(inPlaceVariants(simdMasker), sizes, settings)
  printTable('In place', inPlace, SIZES, ['JS', 'WASM'])
  printTable('In place, sizes around the crossover', inPlace, CROSSOVER_SIZES, ['JS', 'WASM'])
  const from = crossover(inPlace, sizes, 'JS', 'WASM')
  console.log(`\nCrossover: WASM >= JS at every measured size from ${from === undefined ? '(none)' : formatSize(from)}`)

  const copies = measure(copyVariants(simdMasker), sizes, settings)
  printTable('Into a second buffer', copies, SIZES, ['copy+JS', 'WASM copyUnmasked'])
  const fusedJs = crossover(copies, sizes, 'copy+JS', 'JS copyUnmasked')
  const fusedWasm = crossover(copies, sizes, 'copy+WASM', 'WASM copyUnmasked')
  console.log(`\nJS copyUnmasked >= copy+JS from ${fusedJs === undefined ? '(none)' : formatSize(fusedJs)}; ` +
    `WASM copyUnmasked >= copy+WASM from ${fusedWasm === undefined ? '(none)' : formatSize(fusedWasm)}`)

  if (settings.sweep) {
    const wasm = inPlaceVariants(simdMasker).find((v) => v.name === 'WASM')!
    console.log('\nWASM in place over start offsets 0..4080 (GB/s; slow = under half the median)\n')
    console.log('| size | min | median | max | slow offsets |')
    console.log('| ---: | ---: | ---: | ---: | --- |')
    for (const size of SWEEP_SIZES) sweep(wasm, size, settings)
  }
  console.log(`\nload average at the end ${os.loadavg()[0]!.toFixed(2)}`)
}

main()
