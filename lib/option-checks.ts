import { isValidHeaderName } from './handshake.js'

/** The longest delay a Node timer takes (larger ones fire at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Returns `value`, or throws a RangeError naming the option when it is not an integer >= `min`. */
export function checkInteger (name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`websocket: option ${name} must be an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

/** Returns `value`, or throws a RangeError naming the option when it is not a usable timer delay. */
export function checkMilliseconds (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new RangeError(`websocket: option ${name} must be an integer from 0 to ${MAX_TIMER_MS}, got ${String(value)}`)
  }
  return value
}

/** Returns a copy of a subprotocol list, or throws a TypeError unless it is an array of distinct tokens. */
export function checkSubprotocols (value: unknown): string[] {
  if (!Array.isArray(value) || value.some((p) => typeof p !== 'string' || !isValidHeaderName(p))) {
    throw new TypeError('websocket: option subprotocols must be an array of tokens')
  }
  if (new Set(value).size !== value.length) throw new TypeError('websocket: option subprotocols has duplicates')
  return [...value] as string[]
}

/** Throws a TypeError naming the option unless `value` is undefined or a function. */
export function checkOptionalFunction (name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`websocket: option ${name} must be a function`)
}
