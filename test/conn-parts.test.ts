// The parts of a Conn on their own, without a socket: the tick cork, the write side over an
// in-memory stream, and the read side fed bytes directly, reporting to a recording object.
import t from 'tap'
import { Duplex, Writable } from 'node:stream'
import { ConnReader, ReadKind, type Message, type ReadEvents } from '../lib/conn/read.js'
import { ConnWriter } from '../lib/conn/write.js'
import { uncorkAtTickEnd } from '../lib/conn/tick-cork.js'
import { resolveConnOptions } from '../lib/options.js'
import { CloseError, ProtocolError } from '../lib/protocol/errors.js'
import { frame } from './helpers/frames.js'

t.test('tick cork: everything registered in a tick is uncorked once when it ends, late arrivals in the same pass', async (t) => {
  const order: string[] = []
  const late = { uncorkAtTickEnd: () => { order.push('late') } }
  uncorkAtTickEnd({ uncorkAtTickEnd: () => { order.push('a'); uncorkAtTickEnd(late) } })
  uncorkAtTickEnd({ uncorkAtTickEnd: () => { order.push('b') } })
  t.same(order, [], 'nothing before the tick ends')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(order, ['a', 'b', 'late'], 'in registration order, a registration made while uncorking included')
})

/** A stream that records every write as one chunk and how many system calls (writev batches) it took. */
class Recorder extends Writable {
  readonly chunks: Buffer[] = []
  batches = 0
  constructor () {
    super({ highWaterMark: 1 << 20 })
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, callback: () => void): void {
    this.batches++
    // Copied: a writer may reuse its buffer once the write is done, as a socket lets it.
    for (const { chunk } of chunks) this.chunks.push(Buffer.from(chunk))
    callback()
  }

  override _write (chunk: Buffer, _encoding: string, callback: () => void): void {
    this.batches++
    this.chunks.push(Buffer.from(chunk))
    callback()
  }
}

t.test('write side: whole messages, a streamed message with a control frame between its fragments, one batch per tick', async (t) => {
  const out = new Recorder()
  const writer = new ConnWriter(out as unknown as Duplex, true, resolveConnOptions({ writeBufferSize: 4 }), undefined)
  await Promise.all([writer.writeMessage(1, 'one'), writer.writeMessage(2, Buffer.from('two'))])
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(out.batches, 1, 'two messages written in one tick leave in one batch')
  const stream = await writer.nextWriter(1)
  const queued = writer.writeMessage(1, 'after the stream')
  await stream.write('abcdef')
  await writer.writeControl(9, Buffer.from('p'), undefined)
  await stream.close()
  await queued
  // Written to the corked stream: it gets the bytes when the tick ends.
  await new Promise((resolve) => setImmediate(resolve))
  const wire = Buffer.concat(out.chunks)
  const expected = Buffer.concat([
    frame({ opcode: 1, payload: 'one' }),
    frame({ opcode: 2, payload: 'two' }),
    frame({ opcode: 1, payload: 'abcd', fin: false }),
    frame({ opcode: 9, payload: 'p' }),
    frame({ opcode: 0, payload: 'ef' }),
    frame({ opcode: 1, payload: 'after the stream' })
  ])
  t.same(wire.toString('hex'), expected.toString('hex'), 'frames in order; the queued message waited for the stream to close')
})

t.test('write side: after fail() every write, queued or new, rejects with the first error', async (t) => {
  const out = new Recorder()
  const writer = new ConnWriter(out as unknown as Duplex, true, resolveConnOptions(), undefined)
  const stream = await writer.nextWriter(2)
  const queued = writer.writeMessage(1, 'queued')
  const first = new Error('first')
  writer.fail(first)
  writer.fail(new Error('second'))
  await t.rejects(queued, first)
  await t.rejects(stream.write('x'), first)
  await t.rejects(writer.writeMessage(1, 'new'), first)
  t.equal(writer.error, first)
})

/** Read events, recorded. */
class Events implements ReadEvents {
  readonly seen: string[] = []
  defaultPing (data: Buffer): void { this.seen.push(`ping ${data.toString()}`) }
  closeFrame (code: number, text: string): void { this.seen.push(`close ${code} ${text}`) }
  protocolError (error: ProtocolError): void { this.seen.push(`error ${error.closeCode}`) }
}

t.test('read side: messages to waiting and later reads in order, control frames reported, then the close error', async (t) => {
  const events = new Events()
  const socket = new Duplex({ read () {}, write (_chunk, _encoding, callback) { callback() } })
  const reader = new ConnReader(socket, true, resolveConnOptions(), undefined, events)
  const waiting = reader.enqueue<Message>(ReadKind.Message, undefined)
  reader.parser.push(Buffer.concat([
    frame({ opcode: 1, payload: 'first', mask: true }),
    frame({ opcode: 9, payload: 'p', mask: true }),
    frame({ opcode: 2, payload: 'sec', mask: true, fin: false }),
    frame({ opcode: 0, payload: 'ond', mask: true }),
    frame({ opcode: 8, payload: Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), mask: true })
  ]))
  t.equal((await waiting).data.toString(), 'first')
  const second = await reader.enqueue<Message>(ReadKind.Message, undefined)
  t.same([second.type, second.data.toString()], [2, 'second'], 'a fragmented message, whole')
  const closed = await reader.enqueue(ReadKind.Message, undefined).catch((error: unknown) => error)
  t.ok(closed instanceof CloseError && closed.code === 1000 && closed.text === 'bye', 'then the CloseError of the close frame')
  t.same(events.seen, ['ping p', 'close 1000 bye'], 'the ping and the close frame were reported in wire order')
})

t.test('read side: a broken rule is reported once and fails every read', async (t) => {
  const events = new Events()
  const socket = new Duplex({ read () {}, write (_chunk, _encoding, callback) { callback() } })
  const reader = new ConnReader(socket, true, resolveConnOptions(), undefined, events)
  reader.parser.push(frame({ opcode: 1, payload: 'unmasked' }))
  const failure = await reader.enqueue(ReadKind.Message, undefined).catch((error: unknown) => error)
  t.ok(failure instanceof ProtocolError && failure.closeCode === 1002, 'reads fail with the ProtocolError (1002)')
  t.same(events.seen, ['error 1002'])
})
