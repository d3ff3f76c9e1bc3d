/**
 * One element of a Sec-WebSocket-Extensions list (RFC 6455 §9.1): the extension name in lower case
 * and its parameters in the order given; a parameter without a value has `true`, a quoted-string
 * value arrives unquoted and unescaped (RFC 7230 §3.2.6).
 */
export interface ExtensionElement {
  name: string
  params: Array<[name: string, value: string | true]>
}

/**
 * Parses a Sec-WebSocket-Extensions value, or several header lines of it, into its elements in
 * order. A malformed element becomes `undefined` in its place and parsing goes on after the next
 * comma, so one broken offer never hides the others; empty list elements are skipped.
 */
export function parseExtensionHeader (header: string | readonly string[] | undefined): Array<ExtensionElement | undefined> {
  const elements: Array<ExtensionElement | undefined> = []
  if (header === undefined) return elements
  for (const line of typeof header === 'string' ? [header] : header) parseLine(line, elements)
  return elements
}

function parseLine (line: string, elements: Array<ExtensionElement | undefined>): void {
  const scanner = new Scanner(line)
  while (!scanner.atEnd()) {
    scanner.skipSpace()
    if (scanner.take(',')) continue
    if (scanner.atEnd()) break
    const element = parseElement(scanner)
    if (element === undefined) scanner.skipElement()
    elements.push(element)
  }
}

/** Reads `name *( ";" param [ "=" value ] )` up to the comma that ends it (consumed) or the end. */
function parseElement (scanner: Scanner): ExtensionElement | undefined {
  const name = scanner.token()
  if (name === '') return undefined
  const element: ExtensionElement = { name: name.toLowerCase(), params: [] }
  for (;;) {
    scanner.skipSpace()
    if (scanner.atEnd() || scanner.take(',')) return element
    if (!scanner.take(';')) return undefined
    scanner.skipSpace()
    const param = scanner.token()
    if (param === '') return undefined
    scanner.skipSpace()
    let value: string | true = true
    if (scanner.take('=')) {
      scanner.skipSpace()
      const read = scanner.peek() === '"' ? scanner.quotedString() : scanner.token()
      if (read === undefined || read === '') return undefined
      value = read
    }
    element.params.push([param.toLowerCase(), value])
  }
}

/** RFC 7230 tchar: the characters a token may hold. */
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/

class Scanner {
  readonly #text: string
  #at = 0

  constructor (text: string) {
    this.#text = text
  }

  atEnd (): boolean {
    return this.#at >= this.#text.length
  }

  peek (): string {
    return this.#text.charAt(this.#at)
  }

  take (char: string): boolean {
    if (this.#text.charAt(this.#at) !== char) return false
    this.#at++
    return true
  }

  skipSpace (): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.#at++
  }

  token (): string {
    const start = this.#at
    while (!this.atEnd() && TOKEN_CHAR.test(this.peek())) this.#at++
    return this.#text.slice(start, this.#at)
  }

  /** Reads a quoted-string and returns its unescaped content, or undefined when it is malformed. */
  quotedString (): string | undefined {
    const text = this.#text
    let value = ''
    for (let at = this.#at + 1; at < text.length; at++) {
      const code = text.charCodeAt(at)
      if (code === 0x22) {
        this.#at = at + 1
        return value
      }
      if (code === 0x5c) {
        at++
        if (at >= text.length || !isQuotedPairChar(text.charCodeAt(at))) return undefined
        value += text.charAt(at)
      } else if (isQdtext(code)) {
        value += text.charAt(at)
      } else {
        return undefined
      }
    }
    return undefined
  }

  /** Moves past the next comma outside a quoted-string, or to the end. */
  skipElement (): void {
    const text = this.#text
    let quoted = false
    while (this.#at < text.length) {
      const char = text.charAt(this.#at++)
      if (quoted && char === '\\') this.#at++
      else if (char === '"') quoted = !quoted
      else if (char === ',' && !quoted) return
    }
  }
}

/** qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
function isQdtext (code: number): boolean {
  return code === 0x09 || code === 0x20 || code === 0x21 || (code >= 0x23 && code <= 0x5b) || (code >= 0x5d && code <= 0x7e) || (code >= 0x80 && code <= 0xff)
}

/** quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
function isQuotedPairChar (code: number): boolean {
  return code === 0x09 || (code >= 0x20 && code <= 0x7e) || (code >= 0x80 && code <= 0xff)
}
