// `tcp://HOST:PORT` endpoints a PUSH socket connects to: IPv4, [IPv6] or a host name.

/** A parsed connect endpoint. */
export interface TcpEndpoint {
  /** As written, e.g. `tcp://127.0.0.1:7777`. */
  endpoint: string
  host: string
  port: number
}

const ENDPOINT = /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/

/**
 * Parses `tcp://HOST:PORT` for connecting (no `*`, port 1..65535).
 * @throws {RangeError} naming the endpoint and the expected form
 */
export function parseTcpEndpoint(text: string): TcpEndpoint {
  const endpoint = text.trim()
  const match = ENDPOINT.exec(endpoint)
  const port = match ? Number(match[2]) : Number.NaN
  if (!match || !(port >= 1 && port <= 65535)) {
    throw new RangeError(
      `expected a connect endpoint tcp://HOST:PORT (e.g. tcp://127.0.0.1:7777), got "${text}"`,
    )
  }
  let host = match[1] as string
  if (host.startsWith('[')) host = host.slice(1, -1)
  return { endpoint, host, port }
}
