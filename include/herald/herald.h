/* herald's C ABI: the kernel for C (and any language with a C FFI).
 *
 * Plain C11, also valid C++. Shipped as libherald.so.0 (only herald_* symbols exported) and as a
 * static archive (libherald_c.a, which also needs the C++ kernel libherald.a and libstdc++);
 * pkg-config name "herald", CMake target herald::herald_c.
 *
 * Every function is safe to call with any argument: a NULL pointer is HERALD_E_INVALID (functions
 * returning a size return 0, herald_sub_fd returns -1), a stale or forged herald_handle is
 * HERALD_E_UNKNOWN_HANDLE, and nothing throws or aborts across this interface. Semantics are those
 * of the C++ API (API.md): herald_notify never allocates, never blocks and runs no client code.
 */
#ifndef HERALD_HERALD_H
#define HERALD_HERALD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when the ABI changes incompatibly (and then so is the SONAME). */
#define HERALD_ABI_VERSION 1u

typedef struct herald_kernel herald_kernel;       /* opaque */
typedef struct herald_sub herald_sub;             /* opaque: one subscription */
typedef struct herald_canceller herald_canceller; /* opaque: cancels blocking calls */
typedef uint64_t herald_handle;                   /* the bits of herald::Handle::raw() */

/* Status: 0, or minus the herald::Errc value. */
enum {
  HERALD_OK = 0,
  HERALD_E_UNKNOWN_HANDLE = -1,
  HERALD_E_CLOSED = -2,
  HERALD_E_EMPTY = -3,
  HERALD_E_FULL = -4,
  HERALD_E_LIMIT = -5,
  HERALD_E_NOMEM = -6,
  HERALD_E_TIMEDOUT = -7,
  HERALD_E_CANCELLED = -8,
  HERALD_E_INVALID = -9
};

/* A static string naming the status ("ok", "unknown_handle", ...); never NULL. */
const char* herald_strerror(int status);
/* HERALD_ABI_VERSION of the library loaded. */
uint32_t herald_abi_version(void);

typedef struct {
  uint64_t seq;
  int64_t arg;
} herald_notification;

typedef struct {
  uint64_t seq;
  uint32_t delivered, dropped, woken;
} herald_receipt;

/* Option structs start with their own size (set by the init function), so that later versions
 * can grow them: a size below this version's struct is HERALD_E_INVALID; bytes beyond it must be
 * zero. NULL options mean the defaults of API.md. */
typedef struct {
  uint32_t size;
  uint32_t max_handles;
  uint32_t max_subscription_capacity;
  uint64_t memory_limit;
} herald_kernel_options;

typedef struct {
  uint32_t size;
  const char* debug_hint; /* copied; NULL = none */
  uint8_t single_producer;
  uint32_t max_waiters;
  uint32_t max_subscribers;
} herald_handle_options;

typedef struct {
  uint32_t size;
  uint32_t capacity;
  uint8_t keep_latest; /* 0: drop_newest when full; else keep_latest */
  const char* debug_hint;
} herald_subscription_options;

void herald_kernel_options_init(herald_kernel_options* options);
void herald_handle_options_init(herald_handle_options* options);
void herald_subscription_options_init(herald_subscription_options* options);

/* ---- control plane (may allocate) ---- */
int herald_kernel_create(const herald_kernel_options* options, herald_kernel** out);
/* Subscriptions must be destroyed first and no call may be in progress. NULL is a no-op. */
void herald_kernel_destroy(herald_kernel* kernel);
int herald_register(herald_kernel* kernel, const herald_handle_options* options,
                    herald_handle* out);
int herald_unregister(herald_kernel* kernel, herald_handle handle);

/* ---- data plane ---- */
int herald_notify(herald_kernel* kernel, herald_handle handle, int64_t arg,
                  herald_receipt* out /* may be NULL */);
int herald_observe(herald_kernel* kernel, herald_handle handle, uint64_t* seq);
/* Blocks until a notification with seq > after (returns the latest one), the handle is
 * unregistered (E_CLOSED), timeout_ns passes (E_TIMEDOUT; < 0 = no timeout, 0 = do not block),
 * or the canceller fires (E_CANCELLED). canceller may be NULL. */
int herald_wait(herald_kernel* kernel, herald_handle handle, uint64_t after, int64_t timeout_ns,
                herald_canceller* canceller, herald_notification* out);

int herald_subscribe(herald_kernel* kernel, herald_handle handle,
                     const herald_subscription_options* options, herald_sub** out);
/* No receive may be in progress on it. NULL is a no-op. */
void herald_sub_destroy(herald_sub* sub);
/* HERALD_OK, HERALD_E_EMPTY, or HERALD_E_CLOSED once unregistered and drained. */
int herald_sub_try_recv(herald_sub* sub, herald_notification* out);
size_t herald_sub_try_recv_batch(herald_sub* sub, herald_notification* out, size_t max);
int herald_sub_recv(herald_sub* sub, int64_t timeout_ns, herald_canceller* canceller,
                    herald_notification* out);
/* An eventfd readable whenever try_recv would return an item or E_CLOSED; owned by the
 * subscription. -1 on failure (errno set). */
int herald_sub_fd(herald_sub* sub);
size_t herald_sub_size(const herald_sub* sub);
uint64_t herald_sub_dropped(const herald_sub* sub);

int herald_canceller_create(herald_canceller** out);
/* Any thread; sticky: every later blocking call given it returns E_CANCELLED. */
void herald_canceller_cancel(herald_canceller* canceller);
/* No blocking call may still be using it. NULL is a no-op. */
void herald_canceller_destroy(herald_canceller* canceller);

typedef struct {
  uint32_t live_handles;
  uint64_t notifications, rejected, delivered, dropped;
  uint64_t memory_used;
} herald_kernel_stats;

int herald_stats(herald_kernel* kernel, herald_kernel_stats* out);
/* Writes describe()'s JSON (NUL-terminated, truncated to cap) and returns its full length, not
 * counting the NUL; herald_describe(k, NULL, 0) is a length query. 0 on failure. */
size_t herald_describe(herald_kernel* kernel, char* buf, size_t cap);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HERALD_HERALD_H */
