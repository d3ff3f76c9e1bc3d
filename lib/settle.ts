/**
 * The one promise that the library's operations return when they finished at once (a write the
 * socket took, say): a message handler returning it holds nothing back.
 */
export const RESOLVED: Promise<void> = Promise.resolve()

/** Does nothing; marks a promise handled when attached as its rejection handler. */
export function noop (): void {}

/**
 * A promise rejected with `error` that is never reported as an unhandled rejection: a write's
 * caller may ignore the result (fire and forget) without taking the process down, and one that
 * awaits still gets the error.
 */
export function rejected (error: unknown): Promise<never> {
  const promise = Promise.reject(error)
  promise.catch(noop)
  return promise
}

/** `value` if it is an Error, else an Error saying what was thrown. */
export function asError (value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}
