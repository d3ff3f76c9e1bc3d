// FrameParser.pause/resume, byte by byte: a sink that pauses inside a callback sees nothing more
// until resume, input pushed meanwhile is held in order, and the events are those of an unpaused run.
import t from 'tap'
import { FrameParser } from '../lib/protocol/parser.js'
import { RecordingSink, frame, mergeData, showEvents, type SinkEvent } from './helpers/frames.js'

const options = (): ConstructorParameters<typeof FrameParser>[1] => ({ isServer: true, readLimit: 0, maxFragments: 1000, allowRsv1: true, validateUtf8: true })

const wire = Buffer.concat([
  frame({ opcode: 1, payload: 'first', mask: true, fin: false }),
  frame({ opcode: 0, payload: ' half', mask: true }),
  frame({ opcode: 9, payload: 'ping', mask: true }),
  frame({ opcode: 2, rsv1: true, payload: Buffer.from([1, 2, 3]), mask: true }),
  frame({ opcode: 1, payload: 'last', mask: true })
])

function unpausedEvents (): SinkEvent[] {
  const sink = new RecordingSink()
  new FrameParser(sink, options()).push(Buffer.from(wire))
  return mergeData(sink.events)
}

t.test('pausing after every event, at every chunking, yields the events of an unpaused run', async (t) => {
  const expected = showEvents(unpausedEvents())
  for (const size of [1, 2, 3, 7, 16, wire.length]) {
    const sink = new RecordingSink()
    const parser = new FrameParser(sink, options())
    let seenWhilePaused = 0
    sink.after = (event) => {
      // A pause takes effect at the end of the current frame: its data and message end still come.
      if (parser.isPaused && event.kind !== 'data' && event.kind !== 'end') seenWhilePaused++
      parser.pause()
    }
    const copy = Buffer.from(wire)
    for (let at = 0; at < copy.length; at += size) parser.push(copy.subarray(at, at + size))
    // Everything pushed after the first pause is held.
    t.ok(parser.heldBytes > 0, `chunks of ${size}: input is held while paused`)
    let resumes = 0
    while (parser.isPaused && resumes < 1000) {
      parser.resume()
      resumes++
    }
    t.equal(seenWhilePaused, 0, `chunks of ${size}: no later frame is acted on while paused`)
    t.equal(parser.heldBytes, 0, `chunks of ${size}: nothing left held`)
    t.same(showEvents(mergeData(sink.events)), expected, `chunks of ${size}: same events, same order`)
  }
})

t.test('resume without a pause does nothing; a pause with nothing held resumes to nothing', async (t) => {
  const sink = new RecordingSink()
  const parser = new FrameParser(sink, options())
  parser.resume()
  t.notOk(parser.isPaused)
  parser.pause()
  parser.resume()
  t.notOk(parser.isPaused)
  parser.push(frame({ opcode: 9, payload: 'x', mask: true }))
  t.same(sink.events.map((e) => e.kind), ['ping'], 'parsing goes on after it')
})

t.test('stop drops held input; nothing is parsed after it', async (t) => {
  const sink = new RecordingSink()
  const parser = new FrameParser(sink, options())
  parser.pause()
  parser.push(frame({ opcode: 9, payload: 'held', mask: true }))
  t.ok(parser.heldBytes > 0)
  parser.stop()
  t.equal(parser.heldBytes, 0, 'held input is let go')
  parser.resume()
  parser.push(frame({ opcode: 9, payload: 'later', mask: true }))
  t.same(sink.events, [], 'no event after stop')
})
