/* The client side of the CURVE-handshakes-over-TCP benchmark: a fleet of libzmq CURVE PUSH
 * sockets that each connect, complete a handshake, send one message and close.
 *
 * COUNT sockets are opened, WINDOW of them in flight at once (a sliding window: socket i is
 * connected when socket i - WINDOW has sent). Every socket uses one client key pair (made once
 * with zmq_curve_keypair), as a fleet of reconnecting clients would; libzmq still makes a fresh
 * short-term key pair for every connection. ZMQ_IMMEDIATE makes the blocking zmq_send wait until
 * that socket's handshake has completed; the message (4 octets: FIRST + i, little-endian) is then
 * delivered during the linger after zmq_close. ZMQ_SNDTIMEO bounds the wait: a handshake that
 * does not complete is an error, reported and exit 1, never skipped.
 *
 * Prints one JSON line: {"sent":COUNT,"ms":…,"cpuMs":…} (wall time from the first connect to
 * the last delivery, and this process's user + system CPU, libzmq's I/O threads included).
 *
 * Usage: handshake-client ENDPOINT SERVER_PUBLIC_KEY_Z85 COUNT WINDOW [FIRST] [IO_THREADS]
 * Built by bench/run.ts: cc -O2 -o bench/.build/handshake-client bench/handshake-client.c -lzmq */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zmq.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
}

static void *ctx;
static const char *endpoint, *server_key;
static char public_key[41], secret_key[41];

static void *open_socket(void) {
  void *push = zmq_socket(ctx, ZMQ_PUSH);
  if (!push) {
    fprintf(stderr, "handshake-client: zmq_socket: %s\n", zmq_strerror(zmq_errno()));
    exit(1);
  }
  int one = 1, linger = 10000, timeout = 30000;
  zmq_setsockopt(push, ZMQ_IMMEDIATE, &one, sizeof one);
  zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(push, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
  zmq_setsockopt(push, ZMQ_CURVE_SERVERKEY, server_key, 40);
  zmq_setsockopt(push, ZMQ_CURVE_PUBLICKEY, public_key, 40);
  zmq_setsockopt(push, ZMQ_CURVE_SECRETKEY, secret_key, 40);
  if (zmq_connect(push, endpoint) != 0) {
    fprintf(stderr, "handshake-client: zmq_connect %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
    exit(1);
  }
  return push;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: %s ENDPOINT SERVER_PUBLIC_KEY_Z85 COUNT WINDOW [FIRST] [IO_THREADS]\n",
            argv[0]);
    return 2;
  }
  endpoint = argv[1];
  server_key = argv[2];
  long count = atol(argv[3]);
  long window = atol(argv[4]);
  uint32_t first = argc > 5 ? (uint32_t)atol(argv[5]) : 0;
  int io_threads = argc > 6 ? atoi(argv[6]) : 1;
  if (strlen(server_key) != 40 || count <= 0 || window <= 0) {
    fprintf(stderr, "handshake-client: bad arguments\n");
    return 2;
  }
  if (window > count) window = count;
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    fprintf(stderr, "handshake-client: zmq_curve_keypair: %s\n", zmq_strerror(zmq_errno()));
    return 1;
  }
  ctx = zmq_ctx_new();
  zmq_ctx_set(ctx, ZMQ_IO_THREADS, io_threads);
  /* The window plus the closed sockets still lingering until their message is out. */
  int limit = zmq_ctx_get(ctx, ZMQ_SOCKET_LIMIT);
  int max_sockets = (int)(window * 8 + 1024);
  if (max_sockets > limit) max_sockets = limit;
  if (zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, max_sockets) != 0) {
    fprintf(stderr, "handshake-client: ZMQ_MAX_SOCKETS %d: %s\n", max_sockets,
            zmq_strerror(zmq_errno()));
    return 1;
  }

  void **sockets = calloc((size_t)window, sizeof *sockets);
  double started = now_ms();
  for (long i = 0; i < window; i++) sockets[i] = open_socket();
  for (long i = 0; i < count; i++) {
    void *push = sockets[i % window];
    uint32_t id = first + (uint32_t)i;
    unsigned char body[4] = {id & 0xff, (id >> 8) & 0xff, (id >> 16) & 0xff, id >> 24};
    if (zmq_send(push, body, sizeof body, 0) != sizeof body) {
      fprintf(stderr, "handshake-client: socket %ld: zmq_send: %s (handshake not completed)\n",
              i, zmq_strerror(zmq_errno()));
      return 1;
    }
    zmq_close(push);
    if (i + window < count) sockets[i % window] = open_socket();
  }
  /* Returns once every lingering socket has delivered its message. */
  zmq_ctx_term(ctx);
  double ms = now_ms() - started;
  printf("{\"sent\":%ld,\"ms\":%.3f,\"cpuMs\":%.3f}\n", count, ms, cpu_ms());
  free(sockets);
  return 0;
}
