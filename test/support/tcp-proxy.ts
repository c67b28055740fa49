// A TCP proxy for tests: listens on a port, forwards each connection to a target, and records
// every chunk the client sent, as the server's socket read it (what Wireshark showed the article).
import { connect, createServer, type Server, type Socket } from 'node:net'

export interface TcpProxy {
  port: number
  /** Per accepted connection, the chunks read from the client, in order. */
  connections: Buffer[][]
  /** Closes the listener and every forwarded connection (the server "goes away"). */
  close(): Promise<void>
}

/** Listens on `port` (0: any) on 127.0.0.1 and forwards to `targetPort`. */
export async function startTcpProxy(port: number, targetPort: number): Promise<TcpProxy> {
  const connections: Buffer[][] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer({ noDelay: true }, (client) => {
    const chunks: Buffer[] = []
    connections.push(chunks)
    const upstream = connect({ host: '127.0.0.1', port: targetPort, noDelay: true })
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => undefined)
      socket.on('close', () => {
        sockets.delete(socket)
        client.destroy()
        upstream.destroy()
      })
    }
    client.on('data', (chunk: Buffer) => {
      chunks.push(Buffer.from(chunk))
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => client.write(chunk))
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    connections,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}
