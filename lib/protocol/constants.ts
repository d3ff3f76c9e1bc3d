/** Message type of a UTF-8 text data message (RFC 6455 opcode 0x1). */
export const TextMessage = 1
/** Message type of a binary data message (RFC 6455 opcode 0x2). */
export const BinaryMessage = 2
/** Message type of a close control message (RFC 6455 opcode 0x8). */
export const CloseMessage = 8
/** Message type of a ping control message (RFC 6455 opcode 0x9). */
export const PingMessage = 9
/** Message type of a pong control message (RFC 6455 opcode 0xA). */
export const PongMessage = 10

/** A data message type: text or binary. */
export type DataMessageType = typeof TextMessage | typeof BinaryMessage
/** A control message type: close, ping or pong. */
export type ControlMessageType = typeof CloseMessage | typeof PingMessage | typeof PongMessage
/** Any message type that can be written. */
export type MessageType = DataMessageType | ControlMessageType

/** Opcode of a continuation frame; never a message type. */
export const OPCODE_CONTINUATION = 0

/** Close code 1000: the purpose of the connection has been fulfilled. */
export const CloseNormalClosure = 1000
/** Close code 1001: the endpoint is going away (server shutdown, page navigation). */
export const CloseGoingAway = 1001
/** Close code 1002: the peer broke the protocol. */
export const CloseProtocolError = 1002
/** Close code 1003: the peer sent a type of data the endpoint cannot accept. */
export const CloseUnsupportedData = 1003
/** Close code 1005: no status code was present; never sent on the wire. */
export const CloseNoStatusReceived = 1005
/** Close code 1006: the connection closed without a close frame; never sent on the wire. */
export const CloseAbnormalClosure = 1006
/** Close code 1007: a message's data was inconsistent with its type (invalid UTF-8 text). */
export const CloseInvalidFramePayloadData = 1007
/** Close code 1008: a message violated the endpoint's policy. */
export const ClosePolicyViolation = 1008
/** Close code 1009: a message was too big to process. */
export const CloseMessageTooBig = 1009
/** Close code 1010: the client expected an extension the server did not negotiate. */
export const CloseMandatoryExtension = 1010
/** Close code 1011: the server met an unexpected condition. */
export const CloseInternalServerErr = 1011
/** Close code 1012: the service is restarting. */
export const CloseServiceRestart = 1012
/** Close code 1013: try again later. */
export const CloseTryAgainLater = 1013
/** Close code 1015: the TLS handshake failed; never sent on the wire. */
export const CloseTLSHandshake = 1015

/** The GUID that RFC 6455 appends to Sec-WebSocket-Key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Largest payload of a control frame (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125
/** Largest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask. */
export const MAX_HEADER_SIZE = 14
