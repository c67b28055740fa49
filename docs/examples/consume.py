#!/usr/bin/env python3
"""A zmq-edge consumer in Python, standard library only: it leases a channel's messages (consumer
group `default`), handles each, acks the handled ones and retries the others after a delay.

    READ_TOKEN=dev-read-token python3 consume.py --channel default [--count N]
"""
import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request


def post(url, token, path, body):
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def handle(message):
    """Prints the message: its seq and frames (base64 in the API) joined by " | "."""
    frames = [base64.b64decode(frame) for frame in message["frames"] or []]
    print(message["seq"], b" | ".join(frames).decode("utf-8", "replace"), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ZMQ_EDGE_URL", "http://127.0.0.1:8787"))
    parser.add_argument("--channel", default="default")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    args = parser.parse_args()
    token = os.environ["READ_TOKEN"]
    base = "/v1/channels/" + args.channel
    handled = 0
    while args.count == 0 or handled < args.count:
        try:
            # Waits up to 20 s for a message; each lease lasts 60 s unless acked.
            pulled = post(args.url, token, base + "/pull",
                          {"batchSize": 10, "wait": 20, "visibilityTimeoutMs": 60000})
        except urllib.error.HTTPError as error:
            if error.code == 429 or error.code >= 500:
                time.sleep(1)
                continue
            sys.exit(f"pull: HTTP {error.code}: {error.read().decode()}")
        except urllib.error.URLError:
            time.sleep(1)
            continue
        acks, retries = [], []
        for message in pulled["messages"]:
            try:
                handle(message)
                acks.append(message["leaseId"])
                handled += 1
            except Exception as error:  # a failure: offered again in 5 s
                print(f"#{message['seq']}: {error}", file=sys.stderr)
                retries.append({"leaseId": message["leaseId"], "delayMs": 5000})
        if acks or retries:
            post(args.url, token, base + "/ack", {"acks": acks, "retries": retries})


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass  # what was leased and not acked comes again when its lease ends
