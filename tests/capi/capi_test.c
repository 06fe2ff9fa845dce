/* The C ABI (herald/herald.h) exercised from C11: every function, every bad input, blocking calls
 * with timeouts, a canceller fired from another thread, and the subscription fd under poll(). */
#define _POSIX_C_SOURCE 200809L

#include <herald/herald.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

#define CHECK_STATUS(expr, expected)                                                               \
  do {                                                                                             \
    int got_ = (expr);                                                                             \
    if (got_ != (expected)) {                                                                      \
      fprintf(stderr, "%s:%d: %s -> %d (%s), expected %d (%s)\n", __FILE__, __LINE__, #expr, got_, \
              herald_strerror(got_), (expected), herald_strerror(expected));                       \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* 1 if fd is readable within timeout_ms. */
static int readable(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

static herald_kernel* make_kernel(void) {
  herald_kernel* k = NULL;
  CHECK_STATUS(herald_kernel_create(NULL, &k), HERALD_OK);
  CHECK(k != NULL);
  return k;
}

static herald_handle make_handle(herald_kernel* k, const char* hint) {
  herald_handle_options o;
  herald_handle_options_init(&o);
  o.debug_hint = hint;
  herald_handle h = 0;
  CHECK_STATUS(herald_register(k, &o, &h), HERALD_OK);
  CHECK(h != 0);
  return h;
}

/* ---- a thread that acts after a delay ---- */
enum action { NOTIFY, CANCEL, UNREGISTER };
struct delayed {
  enum action action;
  long delay_ms;
  herald_kernel* kernel;
  herald_handle handle;
  int64_t arg;
  herald_canceller* canceller;
};

static void* run_delayed(void* p) {
  struct delayed* d = (struct delayed*)p;
  sleep_ms(d->delay_ms);
  switch (d->action) {
    case NOTIFY:
      CHECK_STATUS(herald_notify(d->kernel, d->handle, d->arg, NULL), HERALD_OK);
      break;
    case CANCEL:
      herald_canceller_cancel(d->canceller);
      break;
    case UNREGISTER:
      CHECK_STATUS(herald_unregister(d->kernel, d->handle), HERALD_OK);
      break;
  }
  return NULL;
}

static pthread_t start(struct delayed* d) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, run_delayed, d) == 0);
  return t;
}

static void test_version_and_strings(void) {
  static const int all[] = {HERALD_OK,       HERALD_E_UNKNOWN_HANDLE, HERALD_E_CLOSED,
                            HERALD_E_EMPTY,  HERALD_E_FULL,           HERALD_E_LIMIT,
                            HERALD_E_NOMEM,  HERALD_E_TIMEDOUT,       HERALD_E_CANCELLED,
                            HERALD_E_INVALID};
  CHECK(herald_abi_version() == HERALD_ABI_VERSION);
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) {
    CHECK(herald_strerror(all[i]) != NULL);
    CHECK(strcmp(herald_strerror(all[i]), "unknown") != 0);
  }
  CHECK(strcmp(herald_strerror(HERALD_E_TIMEDOUT), "timed_out") == 0);
  CHECK(strcmp(herald_strerror(HERALD_E_UNKNOWN_HANDLE), "unknown_handle") == 0);
  CHECK(strcmp(herald_strerror(42), "unknown") == 0);
  CHECK(strcmp(herald_strerror(-1000), "unknown") == 0);
}

static void test_options(void) {
  herald_kernel_options_init(NULL);
  herald_handle_options_init(NULL);
  herald_subscription_options_init(NULL);

  herald_kernel_options ko;
  herald_kernel_options_init(&ko);
  CHECK(ko.size == sizeof ko);
  CHECK(ko.max_handles == 65536 && ko.max_subscription_capacity == 65536);
  CHECK(ko.memory_limit == ((uint64_t)256 << 20));
  herald_handle_options ho;
  herald_handle_options_init(&ho);
  CHECK(ho.size == sizeof ho && ho.debug_hint == NULL && ho.single_producer == 0);
  CHECK(ho.max_waiters == 64 && ho.max_subscribers == 16);
  herald_subscription_options so;
  herald_subscription_options_init(&so);
  CHECK(so.size == sizeof so && so.capacity == 256 && so.keep_latest == 0 && so.debug_hint == NULL);

  /* Options that were never initialised (size 0) or are too small are refused. */
  herald_kernel* k = NULL;
  CHECK_STATUS(herald_kernel_create(NULL, NULL), HERALD_E_INVALID);
  ko.size = 0;
  CHECK_STATUS(herald_kernel_create(&ko, &k), HERALD_E_INVALID);
  CHECK(k == NULL);
  ko.size = sizeof ko - 1;
  CHECK_STATUS(herald_kernel_create(&ko, &k), HERALD_E_INVALID);

  /* A later, larger struct is accepted while its extra bytes are zero. */
  struct {
    herald_kernel_options base;
    uint64_t later_field;
  } grown;
  memset(&grown, 0, sizeof grown);
  herald_kernel_options_init(&grown.base);
  grown.base.size = sizeof grown;
  CHECK_STATUS(herald_kernel_create(&grown.base, &k), HERALD_OK);
  herald_kernel_destroy(k);
  k = NULL;
  grown.later_field = 7;
  CHECK_STATUS(herald_kernel_create(&grown.base, &k), HERALD_E_INVALID);
  CHECK(k == NULL);

  herald_kernel_destroy(NULL);
  k = make_kernel();
  herald_handle h = 0;
  ho.size = 3;
  CHECK_STATUS(herald_register(k, &ho, &h), HERALD_E_INVALID);
  herald_handle_options_init(&ho);
  CHECK_STATUS(herald_register(NULL, &ho, &h), HERALD_E_INVALID);
  CHECK_STATUS(herald_register(k, &ho, NULL), HERALD_E_INVALID);
  CHECK_STATUS(herald_register(k, NULL, &h), HERALD_OK);
  herald_sub* s = NULL;
  so.size = 0;
  CHECK_STATUS(herald_subscribe(k, h, &so, &s), HERALD_E_INVALID);
  CHECK(s == NULL);
  herald_kernel_destroy(k);
}

static void test_limits(void) {
  herald_kernel_options ko;
  herald_kernel_options_init(&ko);
  ko.max_handles = 2;
  ko.max_subscription_capacity = 8;
  herald_kernel* k = NULL;
  CHECK_STATUS(herald_kernel_create(&ko, &k), HERALD_OK);
  herald_handle_options ho;
  herald_handle_options_init(&ho);
  ho.max_subscribers = 1;
  ho.single_producer = 1;
  herald_handle a = 0, b = 0, c = 0;
  CHECK_STATUS(herald_register(k, &ho, &a), HERALD_OK);
  CHECK_STATUS(herald_register(k, &ho, &b), HERALD_OK);
  CHECK_STATUS(herald_register(k, &ho, &c), HERALD_E_LIMIT);
  CHECK(c == 0);

  herald_subscription_options so;
  herald_subscription_options_init(&so);
  herald_sub* s = NULL;
  herald_sub* t = NULL;
  so.capacity = 0;
  CHECK_STATUS(herald_subscribe(k, a, &so, &s), HERALD_E_INVALID);
  so.capacity = 9; /* above max_subscription_capacity */
  CHECK_STATUS(herald_subscribe(k, a, &so, &s), HERALD_E_INVALID);
  so.capacity = UINT32_MAX;
  CHECK_STATUS(herald_subscribe(k, a, &so, &s), HERALD_E_INVALID);
  so.capacity = 8;
  CHECK_STATUS(herald_subscribe(k, a, &so, &s), HERALD_OK);
  CHECK_STATUS(herald_subscribe(k, a, &so, &t), HERALD_E_LIMIT);
  CHECK(t == NULL);
  CHECK_STATUS(herald_subscribe(NULL, a, &so, &t), HERALD_E_INVALID);
  CHECK_STATUS(herald_subscribe(k, a, &so, NULL), HERALD_E_INVALID);
  herald_sub_destroy(s);
  herald_sub_destroy(NULL);
  herald_kernel_destroy(k);

  /* A memory limit too small for a handle's core. */
  herald_kernel_options_init(&ko);
  ko.memory_limit = 16;
  CHECK_STATUS(herald_kernel_create(&ko, &k), HERALD_OK);
  CHECK_STATUS(herald_register(k, NULL, &a), HERALD_E_NOMEM);
  herald_kernel_destroy(k);
}

static void test_notify_observe_stale(void) {
  herald_kernel* k = make_kernel();
  herald_handle h = make_handle(k, "notify-test");
  uint64_t seq = 99;
  CHECK_STATUS(herald_observe(k, h, &seq), HERALD_OK);
  CHECK(seq == 0);
  herald_receipt r;
  memset(&r, 0xff, sizeof r);
  CHECK_STATUS(herald_notify(k, h, 7, &r), HERALD_OK);
  CHECK(r.seq == 1 && r.delivered == 0 && r.dropped == 0 && r.woken == 0);
  CHECK_STATUS(herald_notify(k, h, 8, NULL), HERALD_OK);
  CHECK_STATUS(herald_observe(k, h, &seq), HERALD_OK);
  CHECK(seq == 2);
  CHECK_STATUS(herald_observe(k, h, NULL), HERALD_E_INVALID);
  CHECK_STATUS(herald_observe(NULL, h, &seq), HERALD_E_INVALID);
  CHECK_STATUS(herald_notify(NULL, h, 1, &r), HERALD_E_INVALID);

  /* Forged handles. */
  const herald_handle forged[] = {0, 1, h + 1, h ^ ((uint64_t)1 << 40), UINT64_MAX};
  for (size_t i = 0; i < sizeof forged / sizeof forged[0]; ++i) {
    herald_notification n;
    herald_sub* s = NULL;
    CHECK_STATUS(herald_notify(k, forged[i], 1, &r), HERALD_E_UNKNOWN_HANDLE);
    CHECK_STATUS(herald_observe(k, forged[i], &seq), HERALD_E_UNKNOWN_HANDLE);
    CHECK_STATUS(herald_wait(k, forged[i], 0, 0, NULL, &n), HERALD_E_UNKNOWN_HANDLE);
    CHECK_STATUS(herald_subscribe(k, forged[i], NULL, &s), HERALD_E_UNKNOWN_HANDLE);
    CHECK_STATUS(herald_unregister(k, forged[i]), HERALD_E_UNKNOWN_HANDLE);
  }
  /* Stale: unregistered, even after its slot is reused. */
  CHECK_STATUS(herald_unregister(k, h), HERALD_OK);
  CHECK_STATUS(herald_unregister(k, h), HERALD_E_UNKNOWN_HANDLE);
  CHECK_STATUS(herald_unregister(NULL, h), HERALD_E_INVALID);
  herald_handle again = make_handle(k, "reused");
  CHECK(again != h);
  CHECK_STATUS(herald_notify(k, h, 1, NULL), HERALD_E_UNKNOWN_HANDLE);
  CHECK_STATUS(herald_observe(k, h, &seq), HERALD_E_UNKNOWN_HANDLE);
  CHECK_STATUS(herald_notify(k, again, 1, NULL), HERALD_OK);

  herald_kernel_stats st;
  CHECK_STATUS(herald_stats(k, &st), HERALD_OK);
  CHECK(st.live_handles == 1);
  CHECK(st.notifications == 3);
  CHECK(st.rejected >= 6); /* every notify on a forged or stale handle */
  CHECK(st.memory_used > 0);
  CHECK_STATUS(herald_stats(NULL, &st), HERALD_E_INVALID);
  CHECK_STATUS(herald_stats(k, NULL), HERALD_E_INVALID);
  herald_kernel_destroy(k);
}

static void test_wait(void) {
  herald_kernel* k = make_kernel();
  herald_handle h = make_handle(k, "wait-test");
  herald_notification n = {0, 0};

  CHECK_STATUS(herald_wait(k, h, 0, 0, NULL, &n), HERALD_E_TIMEDOUT);
  CHECK_STATUS(herald_wait(k, h, 0, -1, NULL, NULL), HERALD_E_INVALID);
  CHECK_STATUS(herald_wait(NULL, h, 0, -1, NULL, &n), HERALD_E_INVALID);

  /* Already published: returns the latest at once. */
  CHECK_STATUS(herald_notify(k, h, 10, NULL), HERALD_OK);
  CHECK_STATUS(herald_notify(k, h, 11, NULL), HERALD_OK);
  CHECK_STATUS(herald_wait(k, h, 0, -1, NULL, &n), HERALD_OK);
  CHECK(n.seq == 2 && n.arg == 11);

  /* Timeout. */
  int64_t t0 = now_ns();
  CHECK_STATUS(herald_wait(k, h, 2, 20 * 1000000LL, NULL, &n), HERALD_E_TIMEDOUT);
  CHECK(now_ns() - t0 >= 20 * 1000000LL);

  /* Woken by a notifier thread. */
  struct delayed d = {NOTIFY, 20, k, h, 42, NULL};
  pthread_t t = start(&d);
  CHECK_STATUS(herald_wait(k, h, 2, -1, NULL, &n), HERALD_OK);
  CHECK(n.seq == 3 && n.arg == 42);
  pthread_join(t, NULL);

  /* Cancelled from another thread; then sticky. */
  herald_canceller* c = NULL;
  CHECK_STATUS(herald_canceller_create(NULL), HERALD_E_INVALID);
  CHECK_STATUS(herald_canceller_create(&c), HERALD_OK);
  struct delayed dc = {CANCEL, 20, k, h, 0, c};
  t = start(&dc);
  t0 = now_ns();
  CHECK_STATUS(herald_wait(k, h, 3, 10LL * 1000000000LL, c, &n), HERALD_E_CANCELLED);
  CHECK(now_ns() - t0 < 5LL * 1000000000LL);
  pthread_join(t, NULL);
  CHECK_STATUS(herald_wait(k, h, 3, -1, c, &n), HERALD_E_CANCELLED);
  herald_canceller_cancel(NULL);
  herald_canceller_destroy(c);
  herald_canceller_destroy(NULL);

  /* Unregistered while waiting: closed. */
  struct delayed du = {UNREGISTER, 20, k, h, 0, NULL};
  t = start(&du);
  CHECK_STATUS(herald_wait(k, h, 3, -1, NULL, &n), HERALD_E_CLOSED);
  pthread_join(t, NULL);

  /* max_waiters. */
  herald_handle_options ho;
  herald_handle_options_init(&ho);
  ho.max_waiters = 0;
  herald_handle z = 0;
  CHECK_STATUS(herald_register(k, &ho, &z), HERALD_OK);
  CHECK_STATUS(herald_wait(k, z, 0, 10 * 1000000LL, NULL, &n), HERALD_E_LIMIT);
  herald_kernel_destroy(k);
}

static void test_subscription(void) {
  herald_kernel* k = make_kernel();
  herald_handle h = make_handle(k, "sub-test");
  herald_subscription_options so;
  herald_subscription_options_init(&so);
  so.capacity = 4;
  so.debug_hint = "four";
  herald_sub* s = NULL;
  CHECK_STATUS(herald_subscribe(k, h, &so, &s), HERALD_OK);
  herald_notification n = {0, 0};

  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_E_EMPTY);
  CHECK_STATUS(herald_sub_try_recv(s, NULL), HERALD_E_INVALID);
  CHECK_STATUS(herald_sub_try_recv(NULL, &n), HERALD_E_INVALID);
  CHECK(herald_sub_size(s) == 0 && herald_sub_dropped(s) == 0);
  CHECK(herald_sub_size(NULL) == 0 && herald_sub_dropped(NULL) == 0);

  /* Overflow (drop_newest): 6 notifications into 4 slots. */
  for (int i = 1; i <= 6; ++i) {
    herald_receipt r;
    CHECK_STATUS(herald_notify(k, h, i * 100, &r), HERALD_OK);
    CHECK(r.delivered + r.dropped == 1);
  }
  CHECK(herald_sub_size(s) == 4 && herald_sub_dropped(s) == 2);
  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_OK);
  CHECK(n.seq == 1 && n.arg == 100);
  herald_notification batch[8];
  CHECK(herald_sub_try_recv_batch(s, NULL, 8) == 0);
  CHECK(herald_sub_try_recv_batch(NULL, batch, 8) == 0);
  CHECK(herald_sub_try_recv_batch(s, batch, 0) == 0);
  CHECK(herald_sub_try_recv_batch(s, batch, 2) == 2);
  CHECK(batch[0].seq == 2 && batch[1].seq == 3 && batch[1].arg == 300);
  CHECK(herald_sub_try_recv_batch(s, batch, 8) == 1);
  CHECK(batch[0].seq == 4);
  CHECK(herald_sub_try_recv_batch(s, batch, 8) == 0);

  /* The fd under poll(): unreadable when empty, readable once something is buffered, unreadable
   * again after draining to empty. */
  CHECK(herald_sub_fd(NULL) == -1);
  int fd = herald_sub_fd(s);
  CHECK(fd >= 0);
  CHECK(herald_sub_fd(s) == fd);
  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_E_EMPTY);
  CHECK(!readable(fd, 0));
  CHECK_STATUS(herald_notify(k, h, 7, NULL), HERALD_OK);
  CHECK(readable(fd, 1000));
  CHECK(readable(fd, 0)); /* level: still readable until a receive finds the ring empty */
  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_OK);
  CHECK(n.arg == 7);
  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_E_EMPTY);
  CHECK(!readable(fd, 0));
  /* A notifier thread wakes a poll(). */
  struct delayed d = {NOTIFY, 20, k, h, 8, NULL};
  pthread_t t = start(&d);
  CHECK(readable(fd, 5000));
  pthread_join(t, NULL);
  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_OK);
  CHECK(n.arg == 8);

  /* Blocking receive: timeout, notifier thread, canceller. */
  CHECK_STATUS(herald_sub_recv(s, 0, NULL, &n), HERALD_E_TIMEDOUT);
  int64_t t0 = now_ns();
  CHECK_STATUS(herald_sub_recv(s, 20 * 1000000LL, NULL, &n), HERALD_E_TIMEDOUT);
  CHECK(now_ns() - t0 >= 20 * 1000000LL);
  CHECK_STATUS(herald_sub_recv(s, -1, NULL, NULL), HERALD_E_INVALID);
  CHECK_STATUS(herald_sub_recv(NULL, -1, NULL, &n), HERALD_E_INVALID);
  struct delayed d2 = {NOTIFY, 20, k, h, 9, NULL};
  t = start(&d2);
  CHECK_STATUS(herald_sub_recv(s, -1, NULL, &n), HERALD_OK);
  CHECK(n.arg == 9);
  pthread_join(t, NULL);
  herald_canceller* c = NULL;
  CHECK_STATUS(herald_canceller_create(&c), HERALD_OK);
  struct delayed dc = {CANCEL, 20, k, h, 0, c};
  t = start(&dc);
  CHECK_STATUS(herald_sub_recv(s, -1, c, &n), HERALD_E_CANCELLED);
  pthread_join(t, NULL);
  herald_canceller_destroy(c);

  /* keep_latest: the first buffered, the newest kept aside (each displaced one counted). */
  herald_sub* latest = NULL;
  so.capacity = 1;
  so.keep_latest = 1;
  CHECK_STATUS(herald_subscribe(k, h, &so, &latest), HERALD_OK);
  for (int i = 0; i < 5; ++i) CHECK_STATUS(herald_notify(k, h, 1000 + i, NULL), HERALD_OK);
  CHECK(herald_sub_size(latest) + herald_sub_dropped(latest) == 5);
  CHECK(herald_sub_dropped(latest) == 3);
  CHECK_STATUS(herald_sub_try_recv(latest, &n), HERALD_OK);
  CHECK(n.arg == 1000);
  CHECK_STATUS(herald_sub_try_recv(latest, &n), HERALD_OK);
  CHECK(n.arg == 1004);
  CHECK_STATUS(herald_sub_try_recv(latest, &n), HERALD_E_EMPTY);

  /* describe(): a length query, truncation, the full text. */
  size_t len = herald_describe(k, NULL, 0);
  CHECK(len > 0);
  char small[8];
  CHECK(herald_describe(k, small, sizeof small) == len);
  CHECK(strlen(small) == sizeof small - 1);
  char big[65536];
  CHECK(len < sizeof big);
  CHECK(herald_describe(k, big, sizeof big) == len);
  CHECK(strlen(big) == len);
  CHECK(strstr(big, "sub-test") != NULL && strstr(big, "four") != NULL);
  CHECK(big[0] == '{');
  char one[1] = {'x'};
  CHECK(herald_describe(k, one, 1) == len && one[0] == '\0');
  CHECK(herald_describe(NULL, big, sizeof big) == 0 && big[0] == '\0');
  CHECK(herald_describe(k, NULL, 5) == 0);

  /* Unregister: buffered items first, then closed; the fd stays readable once closed. */
  CHECK(herald_sub_try_recv_batch(s, batch, 8) == 4); /* 1000..1003 (1004 dropped) */
  CHECK(batch[3].arg == 1003);
  CHECK_STATUS(herald_notify(k, h, 77, NULL), HERALD_OK);
  CHECK_STATUS(herald_unregister(k, h), HERALD_OK);
  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_OK);
  CHECK(n.arg == 77);
  CHECK(readable(fd, 1000));
  CHECK_STATUS(herald_sub_try_recv(s, &n), HERALD_E_CLOSED);
  CHECK_STATUS(herald_sub_recv(s, -1, NULL, &n), HERALD_E_CLOSED);
  CHECK(readable(fd, 0));
  CHECK_STATUS(herald_sub_try_recv(latest, &n), HERALD_OK);
  CHECK(n.arg == 77);
  CHECK_STATUS(herald_sub_try_recv(latest, &n), HERALD_E_CLOSED);
  herald_sub_destroy(latest);
  herald_sub_destroy(s);

  /* Closed while a blocking receive waits. */
  h = make_handle(k, "closing");
  CHECK_STATUS(herald_subscribe(k, h, NULL, &s), HERALD_OK);
  struct delayed du = {UNREGISTER, 20, k, h, 0, NULL};
  t = start(&du);
  CHECK_STATUS(herald_sub_recv(s, -1, NULL, &n), HERALD_E_CLOSED);
  pthread_join(t, NULL);
  herald_sub_destroy(s);
  herald_kernel_destroy(k);
}

/* Two notifier threads against one subscriber: received + size + dropped == notifications. */
struct flood {
  herald_kernel* kernel;
  herald_handle handle;
  int count;
};

static void* run_flood(void* p) {
  struct flood* f = (struct flood*)p;
  for (int i = 0; i < f->count; ++i)
    CHECK_STATUS(herald_notify(f->kernel, f->handle, i, NULL), HERALD_OK);
  return NULL;
}

static void test_conservation(void) {
  herald_kernel* k = make_kernel();
  herald_handle h = make_handle(k, "flood");
  herald_subscription_options so;
  herald_subscription_options_init(&so);
  so.capacity = 64;
  herald_sub* s = NULL;
  CHECK_STATUS(herald_subscribe(k, h, &so, &s), HERALD_OK);
  struct flood f = {k, h, 20000};
  pthread_t a, b;
  CHECK(pthread_create(&a, NULL, run_flood, &f) == 0);
  CHECK(pthread_create(&b, NULL, run_flood, &f) == 0);
  uint64_t received = 0;
  herald_notification batch[32];
  for (int spins = 0; spins < 2000; ++spins) received += herald_sub_try_recv_batch(s, batch, 32);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  CHECK(received + herald_sub_size(s) + herald_sub_dropped(s) == 40000);
  herald_sub_destroy(s);
  herald_kernel_destroy(k);
}

int main(void) {
  test_version_and_strings();
  test_options();
  test_limits();
  test_notify_observe_stale();
  test_wait();
  test_subscription();
  test_conservation();
  if (failures != 0) {
    fprintf(stderr, "capi_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("capi_test: all checks passed\n");
  return 0;
}
