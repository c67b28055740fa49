#!/usr/bin/python3
"""A pyzmq (libzmq) REQ or DEALER sender for interop tests.

Connects to ENDPOINT, prints {"zmq": version} as a JSON line, then sends COUNT messages, each
[b"msg", index] (a DEALER puts the empty delimiter first, as REQ does, unless --no-delimiter).
A REQ waits for each reply before the next; a DEALER sends all, then reads every reply. Each
reply's last frame is printed as {"reply": text}. Exits 3 if a reply takes over --timeout s.
A DEALER with --key-prefix P puts the frame b"idempotency-key=P<index>" before the delimiter,
and with --copies N sends each message N times (a resend, as after a reply's timeout).
"""
import argparse
import json
import sys

import zmq


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("--socket", choices=["req", "dealer"], default="req")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--no-delimiter", action="store_true")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--key-prefix")
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()

    context = zmq.Context()
    socket = context.socket(zmq.REQ if args.socket == "req" else zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, int(args.timeout * 1000))
    socket.connect(args.endpoint)
    print(json.dumps({"zmq": zmq.zmq_version()}), flush=True)

    def message(index: int) -> list:
        body = [b"msg", str(index).encode("ascii")]
        if args.socket == "dealer" and not args.no_delimiter:
            envelope = [b""]
            if args.key_prefix is not None:
                key = f"idempotency-key={args.key_prefix}{index}".encode("ascii")
                envelope = [key] + envelope
            return envelope + body
        return body

    def receive() -> bool:
        try:
            frames = socket.recv_multipart()
        except zmq.Again:
            print(json.dumps({"timeout": True}), flush=True)
            return False
        envelope = [frame.decode("latin-1") for frame in frames[:-1]]
        reply = {"reply": frames[-1].decode("ascii"), "frames": len(frames), "envelope": envelope}
        print(json.dumps(reply), flush=True)
        return True

    if args.socket == "req":
        for index in range(args.count):
            socket.send_multipart(message(index))
            if not receive():
                return 3
    else:
        for index in range(args.count):
            for _ in range(args.copies):
                socket.send_multipart(message(index))
        for _ in range(args.count * args.copies):
            if not receive():
                return 3
    socket.close()
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
