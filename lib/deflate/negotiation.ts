import { parseExtensionHeader, type ExtensionElement } from './extension-header.js'

/** The extension token of RFC 7692. */
export const PERMESSAGE_DEFLATE = 'permessage-deflate'

/**
 * What both ends agreed on for one connection. Window bits are the RFC's 8..15 (15 when the
 * handshake did not name them); the codec deflates and inflates with 9 where 8 was agreed, which
 * is safe: zlib's 9-bit deflate never reaches back more than 250 bytes, and a 9-bit inflate window
 * reads any stream made with 8.
 */
export interface AgreedParams {
  /** The server resets its compression context after every message. */
  serverNoContextTakeover: boolean
  /** The client resets its compression context after every message. */
  clientNoContextTakeover: boolean
  /** The largest LZ77 window (log2) the server compresses with. */
  serverMaxWindowBits: number
  /** The largest LZ77 window (log2) the client compresses with. */
  clientMaxWindowBits: number
}

/**
 * What one side wants from the negotiation; every field is optional. On the server these are
 * demands placed in the response whatever the client offered, where RFC 7692 lets the server add
 * them; `clientMaxWindowBits` only applies when the client offered `client_max_window_bits`
 * (the RFC forbids it otherwise). On the client they are requested in the offer, and a response
 * that does not grant them is refused.
 */
export interface DeflateNegotiationOptions {
  /** Ask (client) or decide (server) that the server resets its context after every message. Default false. */
  serverNoContextTakeover?: boolean
  /** Ask (client) or decide (server) that the client resets its context after every message. Default false. */
  clientNoContextTakeover?: boolean
  /** Largest window, 8..15, the server may compress with. Default 15. */
  serverMaxWindowBits?: number
  /** Largest window, 8..15, the client may compress with. Default 15. */
  clientMaxWindowBits?: number
}

/** A permessage-deflate offer that passed validation. */
interface Offer {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number | undefined
  /** `true` when offered without a value ("the client supports a limit"). */
  clientMaxWindowBits: number | true | undefined
}

const MAX_WINDOW_BITS = 15

/**
 * Server side: walks the client's offers in order and accepts the first valid permessage-deflate
 * offer, returning the response value (exactly what was agreed) and the agreed parameters; returns
 * undefined when no offer is acceptable, so the connection goes on uncompressed. Offers with
 * unknown, repeated or invalid parameters are declined one by one, never failing the handshake.
 * Throws a RangeError only for invalid `options`.
 */
export function negotiateServer (
  offersHeader: string | readonly string[] | undefined,
  options: DeflateNegotiationOptions = {}
): { response: string, params: AgreedParams } | undefined {
  const wanted = resolveOptions(options)
  for (const element of parseExtensionHeader(offersHeader)) {
    if (element?.name !== PERMESSAGE_DEFLATE) continue
    const offer = readOffer(element)
    if (offer === undefined) continue
    const params: AgreedParams = {
      serverNoContextTakeover: offer.serverNoContextTakeover || wanted.serverNoContextTakeover,
      // gorilla's client refuses a response without it once offered, so it is always echoed.
      clientNoContextTakeover: offer.clientNoContextTakeover || wanted.clientNoContextTakeover,
      serverMaxWindowBits: Math.min(offer.serverMaxWindowBits ?? MAX_WINDOW_BITS, wanted.serverMaxWindowBits),
      clientMaxWindowBits: offer.clientMaxWindowBits === undefined
        ? MAX_WINDOW_BITS
        : Math.min(offer.clientMaxWindowBits === true ? MAX_WINDOW_BITS : offer.clientMaxWindowBits, wanted.clientMaxWindowBits)
    }
    // RFC 7692 7.1.2.1: an offer naming server_max_window_bits is accepted only by naming it in
    // the response (with the same or a smaller value), even when that value is 15. A client that
    // named its own window gets it echoed, so the response states the agreement.
    const echo = {
      serverMaxWindowBits: offer.serverMaxWindowBits !== undefined,
      clientMaxWindowBits: typeof offer.clientMaxWindowBits === 'number'
    }
    return { response: formatExtension(params, echo), params }
  }
  return undefined
}

/**
 * Client side: the Sec-WebSocket-Extensions value to send. It always offers
 * `client_max_window_bits`, so a server may shrink the client's window to save its own memory.
 * Throws a RangeError for invalid `options`.
 */
export function formatClientOffer (options: DeflateNegotiationOptions = {}): string {
  const wanted = resolveOptions(options)
  let offer = PERMESSAGE_DEFLATE
  if (wanted.serverNoContextTakeover) offer += '; server_no_context_takeover'
  if (wanted.clientNoContextTakeover) offer += '; client_no_context_takeover'
  if (wanted.serverMaxWindowBits < MAX_WINDOW_BITS) offer += `; server_max_window_bits=${wanted.serverMaxWindowBits}`
  offer += wanted.clientMaxWindowBits < MAX_WINDOW_BITS ? `; client_max_window_bits=${wanted.clientMaxWindowBits}` : '; client_max_window_bits'
  return offer
}

/**
 * Client side: checks the server's Sec-WebSocket-Extensions response to the offer that
 * `formatClientOffer(options)` made and returns the agreed parameters, or a message saying why the
 * connection must fail: another or a second extension, unknown, repeated or invalid parameters, a
 * window larger than requested, or a request the server did not grant.
 */
export function acceptClientResponse (responseHeader: string | readonly string[], options: DeflateNegotiationOptions = {}): AgreedParams | string {
  const wanted = resolveOptions(options)
  const elements = parseExtensionHeader(responseHeader)
  if (elements.length !== 1) return `the server chose ${elements.length} extensions, one was offered`
  const element = elements[0]
  if (element === undefined) return 'malformed Sec-WebSocket-Extensions response'
  if (element.name !== PERMESSAGE_DEFLATE) return `the server chose extension "${element.name}", which was not offered`
  const response = readOffer(element)
  if (response === undefined) return 'unknown, repeated or invalid permessage-deflate parameters in the response'
  if (response.clientMaxWindowBits === true) return 'client_max_window_bits without a value in the response'
  if (wanted.serverNoContextTakeover && !response.serverNoContextTakeover) return 'the server did not grant server_no_context_takeover'
  if (wanted.serverMaxWindowBits < MAX_WINDOW_BITS) {
    if (response.serverMaxWindowBits === undefined) return 'the server did not grant server_max_window_bits'
    if (response.serverMaxWindowBits > wanted.serverMaxWindowBits) return `server_max_window_bits=${response.serverMaxWindowBits} is more than the ${wanted.serverMaxWindowBits} requested`
  }
  if (response.clientMaxWindowBits !== undefined && response.clientMaxWindowBits > wanted.clientMaxWindowBits) {
    return `client_max_window_bits=${response.clientMaxWindowBits} is more than the ${wanted.clientMaxWindowBits} offered`
  }
  return {
    serverNoContextTakeover: response.serverNoContextTakeover,
    clientNoContextTakeover: response.clientNoContextTakeover || wanted.clientNoContextTakeover,
    serverMaxWindowBits: response.serverMaxWindowBits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits: Math.min(response.clientMaxWindowBits ?? MAX_WINDOW_BITS, wanted.clientMaxWindowBits)
  }
}

/**
 * Formats agreed parameters as an extension value in a fixed order; window bits of 15 are left
 * out unless `always` names the parameter (a response must carry any it was offered).
 */
export function formatExtension (params: AgreedParams, always: { serverMaxWindowBits?: boolean, clientMaxWindowBits?: boolean } = {}): string {
  let value = PERMESSAGE_DEFLATE
  if (params.serverNoContextTakeover) value += '; server_no_context_takeover'
  if (params.clientNoContextTakeover) value += '; client_no_context_takeover'
  if (always.serverMaxWindowBits === true || params.serverMaxWindowBits < MAX_WINDOW_BITS) value += `; server_max_window_bits=${params.serverMaxWindowBits}`
  if (always.clientMaxWindowBits === true || params.clientMaxWindowBits < MAX_WINDOW_BITS) value += `; client_max_window_bits=${params.clientMaxWindowBits}`
  return value
}

/** DeflateNegotiationOptions with defaults, checked; throws a RangeError for values that cannot work. */
export function resolveOptions (options: DeflateNegotiationOptions): Required<DeflateNegotiationOptions> {
  const resolved = {
    serverNoContextTakeover: options.serverNoContextTakeover ?? false,
    clientNoContextTakeover: options.clientNoContextTakeover ?? false,
    serverMaxWindowBits: options.serverMaxWindowBits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits: options.clientMaxWindowBits ?? MAX_WINDOW_BITS
  }
  for (const name of ['serverMaxWindowBits', 'clientMaxWindowBits'] as const) {
    const bits = resolved[name]
    if (!Number.isInteger(bits) || bits < 8 || bits > MAX_WINDOW_BITS) {
      throw new RangeError(`websocket: ${name} must be an integer from 8 to 15, got ${String(bits)}`)
    }
  }
  return resolved
}

/** Validates the parameters of one offer (or response); undefined when any is unknown, repeated or invalid. */
function readOffer (element: ExtensionElement): Offer | undefined {
  const offer: Offer = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: undefined, clientMaxWindowBits: undefined }
  const seen = new Set<string>()
  for (const [name, value] of element.params) {
    if (seen.has(name)) return undefined
    seen.add(name)
    switch (name) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        if (value !== true) return undefined
        if (name === 'server_no_context_takeover') offer.serverNoContextTakeover = true
        else offer.clientNoContextTakeover = true
        break
      case 'server_max_window_bits': {
        const bits = value === true ? undefined : parseWindowBits(value)
        if (bits === undefined) return undefined
        offer.serverMaxWindowBits = bits
        break
      }
      case 'client_max_window_bits': {
        const bits = value === true ? true : parseWindowBits(value)
        if (bits === undefined) return undefined
        offer.clientMaxWindowBits = bits
        break
      }
      default:
        return undefined
    }
  }
  return offer
}

/** RFC 7692 §7.1.2: a decimal integer from 8 to 15 without leading zeroes. */
function parseWindowBits (value: string): number | undefined {
  return /^(?:[89]|1[0-5])$/.test(value) ? Number(value) : undefined
}
