# The pyzmq ingest receiver for bench/run.ts (same protocol as bench/ingest-receiver.ts).
# Run: /usr/bin/python3 bench/pyzmq-receiver.py COUNT [SERVER_SECRET_KEY_Z85]
import json
import sys
import time

import zmq

count = int(sys.argv[1])
ctx = zmq.Context()
pull = ctx.socket(zmq.PULL)
pull.setsockopt(zmq.RCVHWM, 1_000_000)
pull.setsockopt(zmq.LINGER, 0)
if len(sys.argv) > 2:
    pull.setsockopt(zmq.CURVE_SERVER, 1)
    pull.setsockopt(zmq.CURVE_SECRETKEY, sys.argv[2].encode())
port = pull.bind_to_random_port("tcp://127.0.0.1")
print(json.dumps({"port": port}), flush=True)
pull.recv()
started = time.perf_counter()
for _ in range(count - 1):
    pull.recv()
ms = (time.perf_counter() - started) * 1000
print(json.dumps({"msgPerSec": count / (ms / 1000), "ms": ms}), flush=True)
pull.close()
ctx.term()
