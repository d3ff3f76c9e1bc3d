import { createServer, connect, type Socket, type Server } from 'node:net'
import { once } from 'node:events'
import { Conn } from '../../lib/conn/conn.js'
import type { ConnOptions } from '../../lib/options.js'

/** Two raw TCP sockets connected over loopback, and the listening server to close afterwards. */
export async function socketPair (): Promise<{ serverSocket: Socket, clientSocket: Socket, listener: Server }> {
  const listener = createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const address = listener.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  const accepted = once(listener, 'connection')
  const clientSocket = connect(address.port, '127.0.0.1')
  await once(clientSocket, 'connect')
  const [serverSocket] = await accepted as [Socket]
  return { serverSocket, clientSocket, listener }
}

/**
 * A server Conn and a client Conn joined by a real loopback TCP connection, skipping the HTTP
 * handshake (tested on its own); `cleanup` destroys both and stops the listener.
 */
export async function connPair (serverOptions: ConnOptions = {}, clientOptions: ConnOptions = {}): Promise<{
  server: Conn
  client: Conn
  serverSocket: Socket
  clientSocket: Socket
  cleanup: () => Promise<void>
}> {
  const { serverSocket, clientSocket, listener } = await socketPair()
  const server = new Conn(serverSocket, { isServer: true, options: serverOptions })
  const client = new Conn(clientSocket, { isServer: false, options: clientOptions })
  const cleanup = async (): Promise<void> => {
    server.terminate()
    client.terminate()
    await Promise.all([server.closed, client.closed])
    listener.close()
  }
  return { server, client, serverSocket, clientSocket, cleanup }
}
