/* A libzmq PUSH sender for the ingest benchmarks: connects to a PULL, sends COUNT messages of
 * SIZE octets as fast as libzmq takes them, then waits (linger) until all are delivered.
 * Usage: sender ENDPOINT COUNT SIZE [SERVER_PUBLIC_KEY_Z85]   (a key turns CURVE on)
 * Built by bench/run.ts: cc -O2 -o bench/.build/sender bench/sender.c -lzmq */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s ENDPOINT COUNT SIZE [SERVER_PUBLIC_KEY_Z85]\n", argv[0]);
    return 2;
  }
  const char *endpoint = argv[1];
  long count = atol(argv[2]);
  size_t size = (size_t)atol(argv[3]);
  void *ctx = zmq_ctx_new();
  void *push = zmq_socket(ctx, ZMQ_PUSH);
  int hwm = 1000000;
  zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
  int linger = 60000;
  zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
  if (argc > 4) {
    char public_key[41], secret_key[41];
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
      fprintf(stderr, "zmq_curve_keypair: %s\n", zmq_strerror(zmq_errno()));
      return 1;
    }
    zmq_setsockopt(push, ZMQ_CURVE_SERVERKEY, argv[4], 40);
    zmq_setsockopt(push, ZMQ_CURVE_PUBLICKEY, public_key, 40);
    zmq_setsockopt(push, ZMQ_CURVE_SECRETKEY, secret_key, 40);
  }
  if (zmq_connect(push, endpoint) != 0) {
    fprintf(stderr, "zmq_connect %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
    return 1;
  }
  char *payload = malloc(size ? size : 1);
  memset(payload, 'a', size);
  for (long i = 0; i < count; i++) {
    if (zmq_send(push, payload, size, 0) < 0) {
      fprintf(stderr, "zmq_send: %s\n", zmq_strerror(zmq_errno()));
      return 1;
    }
  }
  zmq_close(push);
  zmq_ctx_term(ctx);
  free(payload);
  return 0;
}
