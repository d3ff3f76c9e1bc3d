/** A source of equally sized write buffers; `get` may return undefined to ask for a new one. */
export interface BufferPool {
  get (): Buffer | undefined
  put (buffer: Buffer): void
}

/**
 * A pool that keeps at most `maxIdle` buffers for reuse; buffers of another size are dropped,
 * so one pool serves one `writeBufferSize`.
 */
export class SimpleBufferPool implements BufferPool {
  private readonly idle: Buffer[] = []
  private readonly size: number
  private readonly maxIdle: number

  constructor (size: number, maxIdle = 1024) {
    this.size = size
    this.maxIdle = maxIdle
  }

  get (): Buffer | undefined {
    return this.idle.pop()
  }

  put (buffer: Buffer): void {
    if (buffer.length === this.size && this.idle.length < this.maxIdle) this.idle.push(buffer)
  }

  /** Number of buffers waiting for reuse. */
  get idleCount (): number {
    return this.idle.length
  }
}
