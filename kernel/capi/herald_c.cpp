// The C ABI (include/herald/herald.h) on the public C++ API. Every entry point is noexcept and
// catches what the control plane may throw (std::bad_alloc, std::length_error), so nothing crosses
// the C boundary; every pointer is checked before use.

#include "herald/herald.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <new>
#include <stop_token>
#include <string>
#include <string_view>

#include "herald/kernel.hpp"
#include "herald/subscription.hpp"

struct herald_kernel {
  explicit herald_kernel(const herald::KernelOptions& options) : kernel(options) {}
  herald::Kernel kernel;
};

struct herald_sub {
  herald::Subscription sub;
};

struct herald_canceller {
  std::stop_source source;
};

namespace {

constexpr int status(herald::Errc e) noexcept { return -static_cast<int>(e); }

int status_of_exception() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return HERALD_E_NOMEM;
  } catch (...) {
    return HERALD_E_INVALID;
  }
}

// An option struct from a caller built against this version or a later one: at least this
// version's size, and every byte past it zero (a later field this library cannot honour).
template <class T>
bool options_ok(const T* options) noexcept {
  if (options->size < sizeof(T)) return false;
  const auto* bytes = reinterpret_cast<const unsigned char*>(options);
  for (std::size_t i = sizeof(T); i < options->size; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

std::chrono::nanoseconds timeout_of(std::int64_t timeout_ns) noexcept {
  if (timeout_ns < 0) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds(timeout_ns);
}

void copy(const herald::Notification& from, herald_notification* to) noexcept {
  to->seq = from.seq;
  to->arg = from.arg;
}

}  // namespace

extern "C" {

const char* herald_strerror(int status) {
  switch (status) {
    case HERALD_OK:
      return "ok";
    case HERALD_E_UNKNOWN_HANDLE:
      return "unknown_handle";
    case HERALD_E_CLOSED:
      return "closed";
    case HERALD_E_EMPTY:
      return "empty";
    case HERALD_E_FULL:
      return "full";
    case HERALD_E_LIMIT:
      return "limit_exceeded";
    case HERALD_E_NOMEM:
      return "out_of_memory";
    case HERALD_E_TIMEDOUT:
      return "timed_out";
    case HERALD_E_CANCELLED:
      return "cancelled";
    case HERALD_E_INVALID:
      return "invalid_argument";
    default:
      return "unknown";
  }
}

uint32_t herald_abi_version(void) { return HERALD_ABI_VERSION; }

void herald_kernel_options_init(herald_kernel_options* options) {
  if (options == nullptr) return;
  const herald::KernelOptions defaults;
  std::memset(options, 0, sizeof *options);
  options->size = sizeof *options;
  options->max_handles = defaults.max_handles;
  options->max_subscription_capacity = defaults.max_subscription_capacity;
  options->memory_limit = defaults.memory_limit;
}

void herald_handle_options_init(herald_handle_options* options) {
  if (options == nullptr) return;
  const herald::HandleOptions defaults;
  std::memset(options, 0, sizeof *options);
  options->size = sizeof *options;
  options->debug_hint = nullptr;
  options->single_producer = defaults.producers == herald::Producers::single;
  options->max_waiters = defaults.max_waiters;
  options->max_subscribers = defaults.max_subscribers;
}

void herald_subscription_options_init(herald_subscription_options* options) {
  if (options == nullptr) return;
  const herald::SubscriptionOptions defaults;
  std::memset(options, 0, sizeof *options);
  options->size = sizeof *options;
  options->capacity = defaults.capacity;
  options->keep_latest = defaults.overflow == herald::Overflow::keep_latest;
  options->debug_hint = nullptr;
}

int herald_kernel_create(const herald_kernel_options* options, herald_kernel** out) {
  if (out == nullptr) return HERALD_E_INVALID;
  *out = nullptr;
  herald::KernelOptions opts;
  if (options != nullptr) {
    if (!options_ok(options)) return HERALD_E_INVALID;
    opts.max_handles = options->max_handles;
    opts.max_subscription_capacity = options->max_subscription_capacity;
    if (options->memory_limit > SIZE_MAX) return HERALD_E_INVALID;
    opts.memory_limit = static_cast<std::size_t>(options->memory_limit);
  }
  try {
    *out = new herald_kernel(opts);
    return HERALD_OK;
  } catch (...) {
    return status_of_exception();
  }
}

void herald_kernel_destroy(herald_kernel* kernel) { delete kernel; }

int herald_register(herald_kernel* kernel, const herald_handle_options* options,
                    herald_handle* out) {
  if (kernel == nullptr || out == nullptr) return HERALD_E_INVALID;
  *out = 0;
  herald::HandleOptions opts;
  if (options != nullptr) {
    if (!options_ok(options)) return HERALD_E_INVALID;
    if (options->debug_hint != nullptr) opts.debug_hint = options->debug_hint;
    opts.producers =
        options->single_producer != 0 ? herald::Producers::single : herald::Producers::multi;
    opts.max_waiters = options->max_waiters;
    opts.max_subscribers = options->max_subscribers;
  }
  try {
    auto r = kernel->kernel.register_handle(opts);
    if (!r) return status(r.error());
    *out = r->raw();
    return HERALD_OK;
  } catch (...) {
    return status_of_exception();
  }
}

int herald_unregister(herald_kernel* kernel, herald_handle handle) {
  if (kernel == nullptr) return HERALD_E_INVALID;
  try {
    auto r = kernel->kernel.unregister_handle(herald::Handle::from_raw(handle));
    return r ? HERALD_OK : status(r.error());
  } catch (...) {
    return status_of_exception();
  }
}

int herald_notify(herald_kernel* kernel, herald_handle handle, int64_t arg, herald_receipt* out) {
  if (kernel == nullptr) return HERALD_E_INVALID;
  auto r = kernel->kernel.notify(herald::Handle::from_raw(handle), arg);
  if (!r) return status(r.error());
  if (out != nullptr) {
    out->seq = r->seq;
    out->delivered = r->delivered;
    out->dropped = r->dropped;
    out->woken = r->woken;
  }
  return HERALD_OK;
}

int herald_observe(herald_kernel* kernel, herald_handle handle, uint64_t* seq) {
  if (kernel == nullptr || seq == nullptr) return HERALD_E_INVALID;
  auto r = kernel->kernel.observe(herald::Handle::from_raw(handle));
  if (!r) return status(r.error());
  *seq = r->seq;
  return HERALD_OK;
}

int herald_wait(herald_kernel* kernel, herald_handle handle, uint64_t after, int64_t timeout_ns,
                herald_canceller* canceller, herald_notification* out) {
  if (kernel == nullptr || out == nullptr) return HERALD_E_INVALID;
  std::stop_token token;
  herald::WaitOptions options;
  options.timeout = timeout_of(timeout_ns);
  if (canceller != nullptr) {
    token = canceller->source.get_token();
    options.stop = &token;
  }
  auto r = kernel->kernel.wait_blocking(herald::Handle::from_raw(handle), herald::Ticket{after},
                                        options);
  if (!r) return status(r.error());
  copy(*r, out);
  return HERALD_OK;
}

int herald_subscribe(herald_kernel* kernel, herald_handle handle,
                     const herald_subscription_options* options, herald_sub** out) {
  if (kernel == nullptr || out == nullptr) return HERALD_E_INVALID;
  *out = nullptr;
  herald::SubscriptionOptions opts;
  if (options != nullptr) {
    if (!options_ok(options)) return HERALD_E_INVALID;
    opts.capacity = options->capacity;
    opts.overflow =
        options->keep_latest != 0 ? herald::Overflow::keep_latest : herald::Overflow::drop_newest;
    if (options->debug_hint != nullptr) opts.debug_hint = options->debug_hint;
  }
  try {
    auto r = kernel->kernel.subscribe(herald::Handle::from_raw(handle), opts);
    if (!r) return status(r.error());
    *out = new herald_sub{std::move(r).value()};
    return HERALD_OK;
  } catch (...) {
    return status_of_exception();
  }
}

void herald_sub_destroy(herald_sub* sub) { delete sub; }

int herald_sub_try_recv(herald_sub* sub, herald_notification* out) {
  if (sub == nullptr || out == nullptr) return HERALD_E_INVALID;
  auto r = sub->sub.try_recv();
  if (!r) return status(r.error());
  copy(*r, out);
  return HERALD_OK;
}

size_t herald_sub_try_recv_batch(herald_sub* sub, herald_notification* out, size_t max) {
  if (sub == nullptr || out == nullptr || max == 0) return 0;
  // herald_notification and herald::Notification have the same layout; copy through a small
  // stack buffer anyway, so that the C struct stays independent of the C++ one.
  constexpr std::size_t kChunk = 64;
  herald::Notification buffer[kChunk];
  std::size_t total = 0;
  while (total < max) {
    const std::size_t want = max - total < kChunk ? max - total : kChunk;
    const std::size_t got = sub->sub.try_recv_batch(std::span(buffer, want));
    for (std::size_t i = 0; i < got; ++i) copy(buffer[i], &out[total + i]);
    total += got;
    if (got < want) break;
  }
  return total;
}

int herald_sub_recv(herald_sub* sub, int64_t timeout_ns, herald_canceller* canceller,
                    herald_notification* out) {
  if (sub == nullptr || out == nullptr) return HERALD_E_INVALID;
  std::stop_token token;
  herald::WaitOptions options;
  options.timeout = timeout_of(timeout_ns);
  if (canceller != nullptr) {
    token = canceller->source.get_token();
    options.stop = &token;
  }
  auto r = sub->sub.recv_blocking(options);
  if (!r) return status(r.error());
  copy(*r, out);
  return HERALD_OK;
}

int herald_sub_fd(herald_sub* sub) {
  if (sub == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return sub->sub.pollable_fd();
}

size_t herald_sub_size(const herald_sub* sub) { return sub == nullptr ? 0 : sub->sub.size(); }

uint64_t herald_sub_dropped(const herald_sub* sub) {
  return sub == nullptr ? 0 : sub->sub.dropped();
}

int herald_canceller_create(herald_canceller** out) {
  if (out == nullptr) return HERALD_E_INVALID;
  *out = nullptr;
  try {
    *out = new herald_canceller{};
    return HERALD_OK;
  } catch (...) {
    return status_of_exception();
  }
}

void herald_canceller_cancel(herald_canceller* canceller) {
  if (canceller != nullptr) canceller->source.request_stop();
}

void herald_canceller_destroy(herald_canceller* canceller) { delete canceller; }

int herald_stats(herald_kernel* kernel, herald_kernel_stats* out) {
  if (kernel == nullptr || out == nullptr) return HERALD_E_INVALID;
  const herald::KernelStats s = kernel->kernel.stats();
  out->live_handles = s.live_handles;
  out->notifications = s.notifications;
  out->rejected = s.rejected;
  out->delivered = s.delivered;
  out->dropped = s.dropped;
  out->memory_used = s.memory_used;
  return HERALD_OK;
}

size_t herald_describe(herald_kernel* kernel, char* buf, size_t cap) {
  if (buf != nullptr && cap > 0) buf[0] = '\0';
  if (kernel == nullptr) return 0;
  if (buf == nullptr && cap != 0) return 0;
  try {
    const std::string json = kernel->kernel.describe();
    if (buf != nullptr && cap > 0) {
      const std::size_t n = json.size() < cap - 1 ? json.size() : cap - 1;
      std::memcpy(buf, json.data(), n);
      buf[n] = '\0';
    }
    return json.size();
  } catch (...) {
    return 0;
  }
}

}  // extern "C"
