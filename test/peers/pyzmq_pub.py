#!/usr/bin/python3
"""A pyzmq (libzmq) PUB or XPUB peer for interop tests.

Connects to ENDPOINT and prints {"connected": endpoint, "zmq": version} as a JSON line. Then it
reads JSON lines on stdin, each a list of hex frames, and publishes each as one multipart
message; "exit" or end of input closes it. An XPUB (--xpub) also prints each subscription it
receives ({"subscription": hex of the whole message, 0x01 and the prefix}). With
--curve-server-key Z85 it is a CURVE client with a fresh key pair.
"""
import argparse
import json
import sys
import threading

import zmq


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("--xpub", action="store_true")
    parser.add_argument("--curve-server-key")
    args = parser.parse_args()

    context = zmq.Context()
    socket = context.socket(zmq.XPUB if args.xpub else zmq.PUB)
    socket.setsockopt(zmq.LINGER, 2000)
    if args.curve_server_key:
        public, secret = zmq.curve_keypair()
        socket.setsockopt(zmq.CURVE_SERVERKEY, args.curve_server_key.encode("ascii"))
        socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.connect(args.endpoint)
    print(json.dumps({"connected": args.endpoint, "zmq": zmq.zmq_version()}), flush=True)

    lock = threading.Lock()
    if args.xpub:
        def subscriptions() -> None:
            poller = zmq.Poller()
            poller.register(socket, zmq.POLLIN)
            while True:
                with lock:
                    if socket.closed:
                        return
                    ready = dict(poller.poll(0))
                    if socket in ready:
                        message = socket.recv()
                        print(json.dumps({"subscription": message.hex()}), flush=True)
                        continue
                threading.Event().wait(0.01)

        threading.Thread(target=subscriptions, daemon=True).start()

    for line in sys.stdin:
        line = line.strip()
        if line == "exit":
            break
        frames = [bytes.fromhex(frame) for frame in json.loads(line)]
        with lock:
            socket.send_multipart(frames)
    with lock:
        socket.close()
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
