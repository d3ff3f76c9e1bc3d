import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A self-signed ECDSA P-256 certificate for 127.0.0.1, made with openssl (node:crypto makes key
 * pairs but not X.509 certificates): the kind most HTTPS servers present, and far cheaper to
 * handshake with than RSA. Throws with a readable message when openssl is missing.
 */
export function benchCertificate (): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'wsconn-bench-tls-'))
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
    ], { stdio: 'ignore' })
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('--tls needs openssl to make the server\'s certificate')
    throw err
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
