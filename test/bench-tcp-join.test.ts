// The raw TCP bench server with BENCH_TCP_JOIN: it echoes its input only in whole blocks of the
// given size, each joined into one Buffer, over a real TCP connection.
import t from 'tap'
import { connect } from 'node:net'
import { once } from 'node:events'
import { startTcp } from '../bench/servers/tcp.js'

t.test('BENCH_TCP_JOIN echoes whole blocks only, however the input is split', async (t) => {
  const saved = process.env.BENCH_TCP_JOIN
  process.env.BENCH_TCP_JOIN = '1000'
  t.teardown(() => {
    if (saved === undefined) delete process.env.BENCH_TCP_JOIN
    else process.env.BENCH_TCP_JOIN = saved
  })
  const server = await startTcp({ mode: 'echo', compress: false, broadcastPayload: Buffer.alloc(0) })
  t.teardown(() => server.close?.())
  t.match(server.impl, /joining every 1000 B/)
  const socket = connect(server.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  const received: Buffer[] = []
  let arrived = 0
  let waiter: { bytes: number, resolve: () => void } | undefined
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk)
    arrived += chunk.length
    if (waiter !== undefined && arrived >= waiter.bytes) waiter.resolve()
  })
  const echoed = (bytes: number): Promise<void> => arrived >= bytes
    ? Promise.resolve()
    : new Promise((resolve) => { waiter = { bytes, resolve } })

  const input = Buffer.alloc(2500)
  for (let i = 0; i < input.length; i++) input[i] = i % 251
  // 2,500 bytes in uneven writes, apart so that they arrive as separate reads.
  for (const [from, to] of [[0, 1], [1, 700], [700, 1999], [1999, 2500]]) {
    socket.write(input.subarray(from, to))
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await echoed(2000)
  // The last 500 bytes are not a whole block: nothing of them may come back, however long we wait.
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(Buffer.concat(received), input.subarray(0, 2000), 'two whole blocks, in order, and no more')

  socket.write(input.subarray(0, 500))
  await echoed(3000)
  t.same(Buffer.concat(received).subarray(2000), Buffer.concat([input.subarray(2000), input.subarray(0, 500)]), 'the third block once it is complete')
})
