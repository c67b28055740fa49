#!/usr/bin/python3
"""A pyzmq (libzmq) PULL peer for interop tests.

Binds ENDPOINT (tcp://127.0.0.1:0 picks a port), prints {"bound": endpoint} as a JSON line, then
prints one JSON line per message received ({"frames": [hex, ...]}) until COUNT messages have
arrived, and exits 0. With --curve-secret-key Z85 it is a CURVE server. Exits 3 if nothing
arrives for --timeout seconds.
"""
import argparse
import json
import sys

import zmq


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--curve-secret-key")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVTIMEO, int(args.timeout * 1000))
    if args.curve_secret_key:
        pull.setsockopt(zmq.CURVE_SERVER, 1)
        pull.setsockopt(zmq.CURVE_SECRETKEY, args.curve_secret_key.encode("ascii"))
    pull.bind(args.endpoint)
    endpoint = pull.getsockopt(zmq.LAST_ENDPOINT).decode("ascii")
    print(json.dumps({"bound": endpoint, "zmq": zmq.zmq_version()}), flush=True)
    for _ in range(args.count):
        try:
            frames = pull.recv_multipart()
        except zmq.Again:
            print(json.dumps({"timeout": True}), flush=True)
            return 3
        print(json.dumps({"frames": [frame.hex() for frame in frames]}), flush=True)
    pull.close()
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
