export {
  TextMessage, BinaryMessage, CloseMessage, PingMessage, PongMessage,
  CloseNormalClosure, CloseGoingAway, CloseProtocolError, CloseUnsupportedData, CloseNoStatusReceived,
  CloseAbnormalClosure, CloseInvalidFramePayloadData, ClosePolicyViolation, CloseMessageTooBig,
  CloseMandatoryExtension, CloseInternalServerErr, CloseServiceRestart, CloseTryAgainLater, CloseTLSHandshake
} from './protocol/constants.js'
export type { DataMessageType, ControlMessageType, MessageType } from './protocol/constants.js'
export {
  CloseError, ProtocolError, ReadLimitError, TimeoutError, CloseSentError, WriteClosedError, UsageError,
  HandshakeError, PublishError, isCloseError, isUnexpectedCloseError, PROTOCOL_ERROR_CODES
} from './protocol/errors.js'
export type { ProtocolErrorCode, ProtocolErrorInfo } from './protocol/errors.js'
export { formatCloseMessage, isValidReceivedCloseCode, closeCodeLabel } from './protocol/close.js'
export { Conn } from './conn/conn.js'
export type { Message, MessageHandler, ReadOptions, CloseHandler, ControlHandler } from './conn/conn.js'
export { MessageReader } from './conn/message-reader.js'
export { MessageWriter } from './conn/message-writer.js'
export { PreparedMessage } from './prepared-message.js'
export type { Payload } from './protocol/framing.js'
export type { ConnOptions, SlowConsumerPolicy } from './options.js'
export {
  DEFAULT_READ_LIMIT, DEFAULT_MAX_FRAGMENTS, DEFAULT_READ_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE, DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_MAX_BUFFERED_AMOUNT
} from './options.js'
export { Hub, MAX_TOPIC_LENGTH, FANOUT_SLICE } from './hub/hub.js'
export type { HubOptions, PublishData, PublishOptions, PublishResult } from './hub/hub.js'
export type { TopicBus, BusMessage, BusDelivery, BusLogger } from './pubsub/bus.js'
export { RedisBus } from './pubsub/redis-bus.js'
export type { RedisBusOptions } from './pubsub/redis-bus.js'
export { SimpleBufferPool } from './buffer-pool.js'
export type { BufferPool } from './buffer-pool.js'
export { isWebSocketUpgrade, parseSubprotocols, checkSameOrigin, computeAcceptKey } from './handshake.js'
export { Upgrader, DEFAULT_UPGRADE_TIMEOUT } from './upgrader.js'
export type { UpgraderOptions, UpgradeErrorInfo } from './upgrader.js'
export { guardHandshakes, DEFAULT_HEADERS_TIMEOUT } from './handshake-guard.js'
export type { HandshakeGuardOptions, GuardedServer } from './handshake-guard.js'
export { Dialer, dial, DialAbortError, DEFAULT_DIAL_TIMEOUT } from './dialer.js'
export type { DialOptions } from './dialer.js'
export { fastifyWsconn, MessageValidationError, DEFAULT_PLUGIN_READ_LIMIT, DEFAULT_CLOSE_GRACE_PERIOD } from './plugin/index.js'
export type {
  WsconnPluginOptions, RouteWebsocketOptions, PubSubOptions, OriginPolicy, InvalidMessagePolicy, WebsocketErrorHandler,
  InjectWSOptions, TypedConn, WebsocketHandler, ResolveIncomingMessage, ResolveOutgoingMessage
} from './plugin/index.js'
import { fastifyWsconn } from './plugin/index.js'
export { fastifyWsconn as default } from './plugin/index.js'

// The CommonJS shape of fastify-org plugins: `require()` and an ES module's default import get the
// plugin itself, carrying every export above as a property. Node's ES module loader still finds the
// named exports in the `exports.X` definitions tsc emits above this line. lib/entry.d.ts declares it.
module.exports = Object.assign(fastifyWsconn, module.exports)
