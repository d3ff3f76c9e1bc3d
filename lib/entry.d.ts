// The package's types as its entry point really is: a CommonJS module whose `module.exports` is the
// plugin, carrying every export of lib/index.ts as a property (see the end of lib/index.ts).
// Declared with `export =` and a namespace, as fastify-org plugins do, so that
// `require('fastify-wsconn')`, `import wsconn from 'fastify-wsconn'` and
// `import { fastifyWsconn } from 'fastify-wsconn'` are all the plugin under every module
// resolution: node10, node16/nodenext from CommonJS and from ES modules, bundler.
// The build copies this file to dist/. Every export of lib/index.ts must be listed here (values and
// types alike): test/package.test.ts fails when one is missing.
import type { fastifyWsconn as plugin } from './index.js'
import {
  TextMessage, BinaryMessage, CloseMessage, PingMessage, PongMessage, CloseNormalClosure, CloseGoingAway,
  CloseProtocolError, CloseUnsupportedData, CloseNoStatusReceived, CloseAbnormalClosure,
  CloseInvalidFramePayloadData, ClosePolicyViolation, CloseMessageTooBig, CloseMandatoryExtension,
  CloseInternalServerErr, CloseServiceRestart, CloseTryAgainLater, CloseTLSHandshake, CloseError,
  ProtocolError, ReadLimitError, TimeoutError, CloseSentError, WriteClosedError, UsageError, HandshakeError,
  isCloseError, isUnexpectedCloseError, formatCloseMessage, isValidReceivedCloseCode, closeCodeLabel, Conn,
  MessageReader, MessageWriter, PreparedMessage, DEFAULT_READ_LIMIT, DEFAULT_MAX_FRAGMENTS,
  DEFAULT_READ_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE, DEFAULT_CLOSE_TIMEOUT, SimpleBufferPool,
  isWebSocketUpgrade, parseSubprotocols, checkSameOrigin, computeAcceptKey, Upgrader,
  DEFAULT_UPGRADE_TIMEOUT, Dialer, dial, DialAbortError, DEFAULT_DIAL_TIMEOUT, MessageValidationError,
  DEFAULT_PLUGIN_READ_LIMIT, DEFAULT_CLOSE_GRACE_PERIOD, PROTOCOL_ERROR_CODES, guardHandshakes, DEFAULT_HEADERS_TIMEOUT,
  PublishError, DEFAULT_MAX_BUFFERED_AMOUNT, Hub, MAX_TOPIC_LENGTH, FANOUT_SLICE, RedisBus
} from './index.js'
import type {
  DataMessageType, ControlMessageType, MessageType, Message, MessageHandler, ReadOptions, CloseHandler, ControlHandler,
  Payload, ConnOptions, BufferPool, UpgraderOptions, UpgradeErrorInfo, DialOptions, WsconnPluginOptions,
  RouteWebsocketOptions, OriginPolicy, InvalidMessagePolicy, WebsocketErrorHandler, InjectWSOptions,
  TypedConn, WebsocketHandler, ResolveIncomingMessage, ResolveOutgoingMessage, ProtocolErrorCode, ProtocolErrorInfo,
  HandshakeGuardOptions, GuardedServer, SlowConsumerPolicy, HubOptions, PublishData, PublishOptions, PublishResult,
  TopicBus, BusMessage, BusDelivery, BusLogger, RedisBusOptions, PubSubOptions
} from './index.js'

/** The fastify-wsconn plugin: the same function as its `default` and `fastifyWsconn` properties. */
declare function fastifyWsconn (...params: Parameters<typeof plugin>): ReturnType<typeof plugin>

declare namespace fastifyWsconn {
  export const fastifyWsconn: typeof plugin
  export { fastifyWsconn as default }
  export {
    TextMessage, BinaryMessage, CloseMessage, PingMessage, PongMessage, CloseNormalClosure, CloseGoingAway,
    CloseProtocolError, CloseUnsupportedData, CloseNoStatusReceived, CloseAbnormalClosure,
    CloseInvalidFramePayloadData, ClosePolicyViolation, CloseMessageTooBig, CloseMandatoryExtension,
    CloseInternalServerErr, CloseServiceRestart, CloseTryAgainLater, CloseTLSHandshake, CloseError,
    ProtocolError, ReadLimitError, TimeoutError, CloseSentError, WriteClosedError, UsageError,
    HandshakeError, isCloseError, isUnexpectedCloseError, formatCloseMessage, isValidReceivedCloseCode,
    closeCodeLabel, Conn, MessageReader, MessageWriter, PreparedMessage, DEFAULT_READ_LIMIT,
    DEFAULT_MAX_FRAGMENTS, DEFAULT_READ_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE, DEFAULT_CLOSE_TIMEOUT,
    SimpleBufferPool, isWebSocketUpgrade, parseSubprotocols, checkSameOrigin, computeAcceptKey, Upgrader,
    DEFAULT_UPGRADE_TIMEOUT, Dialer, dial, DialAbortError, DEFAULT_DIAL_TIMEOUT, MessageValidationError,
    DEFAULT_PLUGIN_READ_LIMIT, DEFAULT_CLOSE_GRACE_PERIOD, PROTOCOL_ERROR_CODES, guardHandshakes, DEFAULT_HEADERS_TIMEOUT,
    PublishError, DEFAULT_MAX_BUFFERED_AMOUNT, Hub, MAX_TOPIC_LENGTH, FANOUT_SLICE, RedisBus
  }
  export type {
    DataMessageType, ControlMessageType, MessageType, Message, MessageHandler, ReadOptions, CloseHandler, ControlHandler,
    Payload, ConnOptions, BufferPool, UpgraderOptions, UpgradeErrorInfo, DialOptions, WsconnPluginOptions,
    RouteWebsocketOptions, OriginPolicy, InvalidMessagePolicy, WebsocketErrorHandler, InjectWSOptions,
    TypedConn, WebsocketHandler, ResolveIncomingMessage, ResolveOutgoingMessage, ProtocolErrorCode, ProtocolErrorInfo,
    HandshakeGuardOptions, GuardedServer, SlowConsumerPolicy, HubOptions, PublishData, PublishOptions, PublishResult,
    TopicBus, BusMessage, BusDelivery, BusLogger, RedisBusOptions, PubSubOptions
  }
}

export = fastifyWsconn
