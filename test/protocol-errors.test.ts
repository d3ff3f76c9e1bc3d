// Errors the peer or the socket caused carry no stack trace, and building one leaves the process's
// stack-trace limit as it was, even when the builder throws.
import t from 'tap'
import { CloseError, stackless } from '../lib/protocol/errors.js'

t.test('stackless builds an error without stack frames and restores the limit', async (t) => {
  const before = Error.stackTraceLimit
  const error = stackless(() => new CloseError(1000, 'bye'))
  t.type(error, CloseError)
  t.equal(error.code, 1000)
  t.notMatch(String(error.stack), /\n\s+at /, 'no frames')
  t.equal(Error.stackTraceLimit, before, 'the limit is back')
  t.match(String(new Error('ordinary').stack), /\n\s+at /, 'other errors still get their frames')
  t.throws(() => stackless(() => { throw new Error('builder failed') }), { message: 'builder failed' })
  t.equal(Error.stackTraceLimit, before, 'the limit is back after a throw too')
})
