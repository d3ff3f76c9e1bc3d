import t from 'tap'
import { parseExtensionHeader } from '../lib/deflate/extension-header.js'
import {
  acceptClientResponse, formatClientOffer, formatExtension, negotiateServer, type AgreedParams, type DeflateNegotiationOptions
} from '../lib/deflate/negotiation.js'

const CHROMIUM_OFFER = 'permessage-deflate; client_max_window_bits'
const GORILLA_OFFER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'

function agreed (overrides: Partial<AgreedParams> = {}): AgreedParams {
  return { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15, ...overrides }
}

/**
 * What RFC 7692 7.1.1-7.1.2 require of a server's response to one offer, checked on the text with
 * a split of its own (not lib's parser); returns the first rule broken, or undefined.
 */
function breaksResponseRules (offer: string, response: string): string | undefined {
  const paramsOf = (value: string): Map<string, string | true> => new Map(value.split(';').slice(1).map((part) => {
    const [name = '', bits] = part.trim().split('=')
    return [name, bits === undefined ? true : bits.replace(/"/g, '')]
  }))
  const offered = paramsOf(offer)
  const answered = paramsOf(response)
  if (!response.startsWith('permessage-deflate')) return 'another extension'
  if (offered.has('server_no_context_takeover') && !answered.has('server_no_context_takeover')) return '7.1.1.1: server_no_context_takeover not granted'
  const serverBits = answered.get('server_max_window_bits')
  if (offered.has('server_max_window_bits')) {
    if (serverBits === undefined) return '7.1.2.1: server_max_window_bits offered but not in the response'
    if (Number(serverBits) > Number(offered.get('server_max_window_bits'))) return '7.1.2.1: a larger server_max_window_bits than offered'
  }
  const clientBits = answered.get('client_max_window_bits')
  if (clientBits !== undefined) {
    if (!offered.has('client_max_window_bits')) return '7.1.2.2: client_max_window_bits in a response to an offer without it'
    if (clientBits === true) return '7.1.2.2: client_max_window_bits without a value in a response'
    const hint = offered.get('client_max_window_bits')
    if (hint !== true && Number(clientBits) > Number(hint)) return '7.1.2.2: a larger client_max_window_bits than offered'
  }
  for (const [name, value] of answered) {
    if (name.endsWith('_no_context_takeover') && value !== true) return `${name} with a value`
    if (name.endsWith('_max_window_bits') && (value === true || !/^(?:[89]|1[0-5])$/.test(value))) return `${name} out of range`
  }
  return undefined
}

t.test('parseExtensionHeader', async (t) => {
  t.same(parseExtensionHeader(undefined), [])
  t.same(parseExtensionHeader(''), [])
  t.same(parseExtensionHeader(' , ,'), [], 'empty list elements are skipped')
  t.same(parseExtensionHeader('a,  '), [{ name: 'a', params: [] }], 'trailing spaces after a comma')
  t.same(parseExtensionHeader(CHROMIUM_OFFER), [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }])
  t.same(parseExtensionHeader('Permessage-Deflate ;Server_Max_Window_Bits = 10 ;x=y\t, foo'), [
    { name: 'permessage-deflate', params: [['server_max_window_bits', '10'], ['x', 'y']] },
    { name: 'foo', params: [] }
  ], 'names are case-insensitive, spaces and tabs around separators are allowed')
  t.same(parseExtensionHeader(['a; p="1\\0"', 'b; q="x, y;z"']), [
    { name: 'a', params: [['p', '10']] },
    { name: 'b', params: [['q', 'x, y;z']] }
  ], 'several header lines; quoted values are unescaped and may hold commas and semicolons')
  t.same(parseExtensionHeader('a; p=""'), [undefined], 'an empty quoted value is invalid')
  t.same(parseExtensionHeader('a; p="\\'), [undefined], 'an escape at the end of the text')
  t.same(parseExtensionHeader('a; p="\\\u0001"'), [undefined], 'an escaped control character')
  t.same(parseExtensionHeader('a; p="x\u0001"'), [undefined], 'a control character inside quotes')
  t.same(parseExtensionHeader('a; p="open, b'), [undefined], 'an unterminated quote swallows the rest')
  t.same(parseExtensionHeader('a; p="\u00e9\\\u00e9"'), [{ name: 'a', params: [['p', '\u00e9\u00e9']] }], 'obs-text is allowed')
  t.same(parseExtensionHeader('a; p="x\\"y"; q'), [{ name: 'a', params: [['p', 'x"y'], ['q', true]] }])
  t.same(parseExtensionHeader('a;, b'), [undefined, { name: 'b', params: [] }], 'a parameter without a name')
  t.same(parseExtensionHeader('a; p=, b'), [undefined, { name: 'b', params: [] }], 'an empty value')
  t.same(parseExtensionHeader('a b, c'), [undefined, { name: 'c', params: [] }], 'garbage after a name')
  t.same(parseExtensionHeader('a; p="1, 2" junk, c'), [undefined, { name: 'c', params: [] }], 'skipping an element steps over quoted commas')
  t.same(parseExtensionHeader('a; p="1\\", 2" junk, c'), [undefined, { name: 'c', params: [] }], 'and over escaped quotes')
  t.same(parseExtensionHeader(';a, "b", c'), [undefined, undefined, { name: 'c', params: [] }], 'elements without a name')
})

t.test('negotiateServer with default options', async (t) => {
  const cases: Array<[offer: string | string[] | undefined, response: string | undefined, params?: Partial<AgreedParams>]> = [
    [undefined, undefined],
    ['', undefined],
    ['x-webkit-deflate-frame', undefined],
    ['permessage-deflate', 'permessage-deflate'],
    [CHROMIUM_OFFER, 'permessage-deflate'],
    [GORILLA_OFFER, GORILLA_OFFER, { serverNoContextTakeover: true, clientNoContextTakeover: true }],
    ['permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover', { serverNoContextTakeover: true }],
    ['permessage-deflate; client_no_context_takeover', 'permessage-deflate; client_no_context_takeover', { clientNoContextTakeover: true }],
    ['permessage-deflate; server_max_window_bits=10', 'permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 10 }],
    // RFC 7692 7.1.2.1: an offer with server_max_window_bits is accepted by naming it in the response, even at 15.
    ['permessage-deflate; server_max_window_bits=15', 'permessage-deflate; server_max_window_bits=15', {}],
    ['permessage-deflate; server_max_window_bits="15"; client_max_window_bits', 'permessage-deflate; server_max_window_bits=15', {}],
    ['permessage-deflate; server_max_window_bits=8', 'permessage-deflate; server_max_window_bits=8', { serverMaxWindowBits: 8 }],
    ['permessage-deflate; client_max_window_bits=9', 'permessage-deflate; client_max_window_bits=9', { clientMaxWindowBits: 9 }],
    ['permessage-deflate; client_max_window_bits=15', 'permessage-deflate; client_max_window_bits=15', {}],
    ['permessage-deflate; client_max_window_bits="10"', 'permessage-deflate; client_max_window_bits=10', { clientMaxWindowBits: 10 }],
    ['permessage-deflate; server_max_window_bits="8"', 'permessage-deflate; server_max_window_bits=8', { serverMaxWindowBits: 8 }],
    [
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11',
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11',
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 11 }
    ],
    // Declined offers: the next valid one wins, or none.
    ['permessage-deflate; server_max_window_bits', undefined],
    ['permessage-deflate; server_max_window_bits=7', undefined],
    ['permessage-deflate; server_max_window_bits=16', undefined],
    ['permessage-deflate; server_max_window_bits=010', undefined],
    ['permessage-deflate; server_max_window_bits=abc', undefined],
    ['permessage-deflate; client_max_window_bits=7', undefined],
    ['permessage-deflate; client_max_window_bits=""', undefined],
    ['permessage-deflate; server_no_context_takeover=1', undefined],
    ['permessage-deflate; client_no_context_takeover="x"', undefined],
    ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', undefined],
    ['permessage-deflate; client_max_window_bits; client_max_window_bits=10', undefined],
    ['permessage-deflate; mystery', undefined],
    ['permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover', 'permessage-deflate; client_no_context_takeover', { clientNoContextTakeover: true }],
    ['foo, permessage-deflate; bad=1, permessage-deflate;;, permessage-deflate; server_max_window_bits=9', 'permessage-deflate; server_max_window_bits=9', { serverMaxWindowBits: 9 }],
    [['permessage-deflate; mystery', 'permessage-deflate; server_max_window_bits=11'], 'permessage-deflate; server_max_window_bits=11', { serverMaxWindowBits: 11 }],
    ['permessage-deflate; server_max_window_bits=10, permessage-deflate', 'permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 10 }]
  ]
  for (const [offer, response, params] of cases) {
    const result = negotiateServer(offer)
    t.equal(result?.response, response, `offer ${JSON.stringify(offer)}`)
    if (response !== undefined) t.same(result?.params, agreed(params), `params for ${JSON.stringify(offer)}`)
  }
})

t.test('negotiateServer honours the server options', async (t) => {
  const cases: Array<[options: DeflateNegotiationOptions, offer: string, response: string, params: Partial<AgreedParams>]> = [
    [{ serverNoContextTakeover: true }, 'permessage-deflate', 'permessage-deflate; server_no_context_takeover', { serverNoContextTakeover: true }],
    [{ clientNoContextTakeover: true }, CHROMIUM_OFFER, 'permessage-deflate; client_no_context_takeover', { clientNoContextTakeover: true }],
    [{ serverMaxWindowBits: 10 }, 'permessage-deflate', 'permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 10 }],
    [{ serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=12', 'permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 10 }],
    [{ serverMaxWindowBits: 12 }, 'permessage-deflate; server_max_window_bits=9', 'permessage-deflate; server_max_window_bits=9', { serverMaxWindowBits: 9 }],
    [{ serverMaxWindowBits: 15 }, 'permessage-deflate; server_max_window_bits=15', 'permessage-deflate; server_max_window_bits=15', {}],
    [{ serverMaxWindowBits: 12 }, 'permessage-deflate; server_max_window_bits=15', 'permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 12 }],
    [{ clientMaxWindowBits: 10 }, CHROMIUM_OFFER, 'permessage-deflate; client_max_window_bits=10', { clientMaxWindowBits: 10 }],
    [{ clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=12', 'permessage-deflate; client_max_window_bits=10', { clientMaxWindowBits: 10 }],
    [{ clientMaxWindowBits: 12 }, 'permessage-deflate; client_max_window_bits=9', 'permessage-deflate; client_max_window_bits=9', { clientMaxWindowBits: 9 }],
    // The RFC forbids client_max_window_bits in a response to an offer without it.
    [{ clientMaxWindowBits: 10 }, 'permessage-deflate', 'permessage-deflate', {}],
    [
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 9 },
      CHROMIUM_OFFER,
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9',
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 9 }
    ],
    [{ serverNoContextTakeover: false }, GORILLA_OFFER, GORILLA_OFFER, { serverNoContextTakeover: true, clientNoContextTakeover: true }]
  ]
  for (const [options, offer, response, params] of cases) {
    const result = negotiateServer(offer, options)
    t.equal(result?.response, response, `${JSON.stringify(options)} / ${offer}`)
    t.same(result?.params, agreed(params))
  }
})

t.test('every combination of offered parameters is answered consistently', async (t) => {
  const bitsChoices = [undefined, 8, 12, 15]
  let count = 0
  for (const snct of [false, true]) {
    for (const cnct of [false, true]) {
      for (const smwb of bitsChoices) {
        for (const cmwb of [undefined, true, 8, 12, 15] as const) {
          for (const [serverMaxWindowBits, clientMaxWindowBits] of [[15, 15], [9, 15], [15, 10], [9, 12]] as const) {
            let offer = 'permessage-deflate'
            if (snct) offer += '; server_no_context_takeover'
            if (cnct) offer += '; client_no_context_takeover'
            if (smwb !== undefined) offer += `; server_max_window_bits=${smwb}`
            if (cmwb === true) offer += '; client_max_window_bits'
            else if (cmwb !== undefined) offer += `; client_max_window_bits=${cmwb}`
            const result = negotiateServer(offer, { serverMaxWindowBits, clientMaxWindowBits })
            if (result === undefined) {
              t.fail(`declined ${offer}`)
              continue
            }
            const { params } = result
            count++
            if (params.serverNoContextTakeover !== snct) t.fail(`server_no_context_takeover for ${offer}`)
            if (params.clientNoContextTakeover !== cnct) t.fail(`client_no_context_takeover for ${offer}`)
            if (params.serverMaxWindowBits !== Math.min(smwb ?? 15, serverMaxWindowBits)) t.fail(`server bits for ${offer}`)
            const clientBits = cmwb === undefined ? 15 : Math.min(cmwb === true ? 15 : cmwb, clientMaxWindowBits)
            if (params.clientMaxWindowBits !== clientBits) t.fail(`client bits for ${offer}`)
            const problem = breaksResponseRules(offer, result.response)
            if (problem !== undefined) t.fail(`${problem}: ${offer} answered with ${result.response}`)
            // The response read back as a client would gives the same agreement.
            const reread = acceptClientResponse(result.response, {
              serverNoContextTakeover: snct,
              clientNoContextTakeover: cnct,
              serverMaxWindowBits: smwb,
              clientMaxWindowBits: typeof cmwb === 'number' ? cmwb : undefined
            })
            t.same(reread, params, `client reading the answer to ${offer}`)
          }
        }
      }
    }
  }
  t.equal(count, 2 * 2 * 4 * 5 * 4)
})

t.test('formatClientOffer', async (t) => {
  t.equal(formatClientOffer(), CHROMIUM_OFFER)
  t.equal(formatClientOffer({ serverNoContextTakeover: true, clientNoContextTakeover: true }), GORILLA_OFFER + '; client_max_window_bits')
  t.equal(formatClientOffer({ serverMaxWindowBits: 10, clientMaxWindowBits: 9 }), 'permessage-deflate; server_max_window_bits=10; client_max_window_bits=9')
  t.equal(formatClientOffer({ serverMaxWindowBits: 15, clientMaxWindowBits: 15 }), CHROMIUM_OFFER)
  // Every offer names client_max_window_bits, so a response carrying it is never one to an offer
  // without it (RFC 7692 7.1.2.2), and acceptClientResponse need not check that case.
  for (const clientMaxWindowBits of [undefined, 8, 15]) {
    for (const serverMaxWindowBits of [undefined, 9]) {
      const offer = formatClientOffer({ clientMaxWindowBits, serverMaxWindowBits, clientNoContextTakeover: true })
      t.match(offer, /; client_max_window_bits(=\d+)?$/, `offered: ${offer}`)
    }
  }
  t.throws(() => formatClientOffer({ serverMaxWindowBits: 7 }), RangeError)
  t.throws(() => formatClientOffer({ clientMaxWindowBits: 16 }), RangeError)
  t.throws(() => negotiateServer(CHROMIUM_OFFER, { clientMaxWindowBits: 9.5 }), RangeError)
})

t.test('acceptClientResponse', async (t) => {
  t.same(acceptClientResponse('permessage-deflate'), agreed())
  t.same(acceptClientResponse(['permessage-deflate; server_no_context_takeover']), agreed({ serverNoContextTakeover: true }), 'the server may add server_no_context_takeover')
  t.same(acceptClientResponse('permessage-deflate; client_no_context_takeover'), agreed({ clientNoContextTakeover: true }), 'and client_no_context_takeover')
  t.same(acceptClientResponse('permessage-deflate', { clientNoContextTakeover: true }), agreed({ clientNoContextTakeover: true }), 'what we offered to do, we do')
  t.same(acceptClientResponse('permessage-deflate; server_max_window_bits=9'), agreed({ serverMaxWindowBits: 9 }), 'the server may narrow its window unasked')
  t.same(acceptClientResponse('permessage-deflate; server_max_window_bits="8"', { serverMaxWindowBits: 10 }), agreed({ serverMaxWindowBits: 8 }))
  t.same(acceptClientResponse('permessage-deflate; client_max_window_bits=10'), agreed({ clientMaxWindowBits: 10 }))
  t.same(acceptClientResponse('permessage-deflate', { clientMaxWindowBits: 11 }), agreed({ clientMaxWindowBits: 11 }), 'our own hint still binds us')
  t.same(acceptClientResponse(GORILLA_OFFER, { serverNoContextTakeover: true }), agreed({ serverNoContextTakeover: true, clientNoContextTakeover: true }))

  const refusals: Array<[response: string | string[], options: DeflateNegotiationOptions, reason: RegExp]> = [
    ['', {}, /0 extensions/],
    ['permessage-deflate, permessage-deflate', {}, /2 extensions/],
    [['permessage-deflate', 'permessage-deflate'], {}, /2 extensions/],
    ['permessage-deflate; =', {}, /malformed/],
    ['x-webkit-deflate-frame', {}, /"x-webkit-deflate-frame", which was not offered/],
    ['permessage-deflate; mystery', {}, /invalid permessage-deflate parameters/],
    ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', {}, /invalid/],
    ['permessage-deflate; server_max_window_bits', {}, /invalid/],
    ['permessage-deflate; server_max_window_bits=16', {}, /invalid/],
    ['permessage-deflate; client_no_context_takeover=1', {}, /invalid/],
    ['permessage-deflate; client_max_window_bits', {}, /without a value/],
    ['permessage-deflate', { serverNoContextTakeover: true }, /did not grant server_no_context_takeover/],
    ['permessage-deflate', { serverMaxWindowBits: 10 }, /did not grant server_max_window_bits/],
    ['permessage-deflate; server_max_window_bits=11', { serverMaxWindowBits: 10 }, /11 is more than the 10 requested/],
    ['permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 10 }, /12 is more than the 10 offered/]
  ]
  for (const [response, options, reason] of refusals) {
    const result = acceptClientResponse(response, options)
    t.type(result, 'string', `refuses ${JSON.stringify(response)}`)
    t.match(result, reason)
  }
})

t.test('formatExtension', async (t) => {
  t.equal(formatExtension(agreed()), 'permessage-deflate')
  t.equal(formatExtension(agreed(), { clientMaxWindowBits: true }), 'permessage-deflate; client_max_window_bits=15')
  t.equal(formatExtension(agreed(), { serverMaxWindowBits: true }), 'permessage-deflate; server_max_window_bits=15')
  t.equal(formatExtension(agreed({ serverMaxWindowBits: 8, clientMaxWindowBits: 9 })), 'permessage-deflate; server_max_window_bits=8; client_max_window_bits=9')
})
