// What the fan-out servers and the load generator agree on: where subscribers and the publisher
// connect, the topic (room), and the event names of the Socket.IO side.

/** The one topic (our side) or room (Socket.IO) every subscriber is in. */
export const TOPIC = 'fanout'

/** Our server: subscribers connect to `/`, the publisher to this path. */
export const PUBLISHER_PATH = '/publish'

/** Engine.IO v4 over WebSocket only, as a Socket.IO client does after `transports: ['websocket']`. */
export const SOCKET_IO_PATH = '/socket.io/?EIO=4&transport=websocket'

/** The query parameter that makes a Socket.IO connection the publisher (it joins no room). */
export const SOCKET_IO_PUBLISHER_PATH = `${SOCKET_IO_PATH}&role=publisher`

/** Socket.IO event the publisher emits; the server re-emits its argument to the room as MESSAGE_EVENT. */
export const PUBLISH_EVENT = 'p'
export const MESSAGE_EVENT = 'm'

/** The implementations compared. */
export type FanoutKind = 'ours' | 'socketio'

/** How the report names them. */
export const FANOUT_LABELS: Record<FanoutKind, string> = { ours: 'ours', socketio: 'Socket.IO' }

/** A started fan-out server in a server process. */
export interface FanoutServer {
  port: number
  /** How it is built, for the report. */
  impl: string
  /** Connections subscribed to TOPIC in this process. */
  subscribers: () => number
  close: () => Promise<void>
}

/** Sent instead of `ready` by a server process that could not start. */
export interface StartFailure {
  event: 'failed'
  message: string
}
