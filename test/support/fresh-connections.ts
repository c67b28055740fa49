// Setup file of the Node test project: every `fetch` opens a new connection.
//
// workerd's HTTP server (under `wrangler dev`) closes a kept-alive connection after 5 s idle and
// sends no `Keep-Alive` header, while undici keeps an idle socket 4 s by a timer. When the test
// process is busy (a bridge relaying thousands of messages on the same event loop), that timer
// runs late and the next request goes out on a socket the server has already closed:
// `fetch failed`, `other side closed` (UND_ERR_SOCKET), before any response. Browsers and curl
// retry such a request (RFC 9112 §9.3.1 allows it for idempotent methods); fetch does not.
// Tests talk to loopback, where a connection costs next to nothing, so they do not keep any.
//
// The fetch is undici's own (the pinned devDependency), not the one Node bundles: Node 26's
// bundled undici (8.x) does not take a dispatcher set through undici 7's setGlobalDispatcher,
// and reused a closed socket there.
import { Agent, setGlobalDispatcher, fetch as undiciFetch } from 'undici'

setGlobalDispatcher(new Agent({ pipelining: 0 }))
globalThis.fetch = undiciFetch as unknown as typeof fetch
