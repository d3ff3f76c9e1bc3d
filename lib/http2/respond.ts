import { constants, type ServerHttp2Stream } from 'node:http2'
import type { OutgoingHttpHeaders } from 'node:http'

/** An HTTP/2 response's headers: names lowercased (RFC 9113 §8.2.1), the status as `:status`. */
export function http2Headers (status: number, ...sources: Array<Record<string, string | string[] | number>>): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { [constants.HTTP2_HEADER_STATUS]: status }
  for (const source of sources) {
    for (const [name, value] of Object.entries(source)) headers[name.toLowerCase()] = value
  }
  return headers
}

/**
 * Answers a stream with `status` and a plain-text body, then closes the stream once the body is
 * out (RST_STREAM NO_ERROR tells a client that has not finished sending to stop, RFC 9113
 * §8.1); the session and its other streams go on. A destroyed stream is left as it is.
 */
export function refuseStream (stream: ServerHttp2Stream, status: number, headers: Record<string, string>, body: string): void {
  // A synchronous check may have destroyed the stream before its 'close' could fail the handshake.
  if (stream.destroyed) return
  stream.respond(http2Headers(status, { 'content-type': 'text/plain; charset=utf-8' }, headers))
  stream.end(body, () => { stream.close(constants.NGHTTP2_NO_ERROR) })
}
