// fuzz_lifecycle: the input is a sequence of operations on a small Kernel; after every step the
// kernel is checked against a simple model (seqs, the counting rule, live handles, waiters,
// memory returning to its baseline, stale handles staying dead).
#include <herald/herald.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace {

using namespace herald;

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "fuzz_lifecycle: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

/// Reads the input a byte at a time; zeros once exhausted.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint32_t u16() { return byte() | (std::uint32_t{byte()} << 8); }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | byte();
    return v;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

struct ModelSub {
  Subscription sub;
  std::uint64_t observed = 0;
  std::uint64_t received = 0;
  std::uint64_t last_seq = 0;
  std::uint32_t capacity = 0;
};

struct ModelHandle {
  Handle handle;
  bool live = true;
  std::uint64_t seq = 0;
  std::uint32_t max_waiters = 0;
  std::uint32_t max_subscribers = 0;
  std::uint32_t parked = 0;  // coroutine waits suspended on it
  std::vector<std::unique_ptr<ModelSub>> subs;
};

struct Waiter {
  ModelHandle* model;
  std::uint64_t ticket;
  bool done = false;
  Result<Notification> result = Errc::empty;
};

Task<void> coroutine_wait(Kernel& k, Handle h, std::uint64_t ticket, Waiter& w) {
  w.result = co_await k.wait(h, Ticket{ticket});
  w.done = true;
}

constexpr std::uint32_t kMaxHandles = 6;
constexpr std::uint32_t kMaxCapacity = 64;

void run(Input& in) {
  Kernel k(KernelOptions{.max_handles = kMaxHandles,
                         .max_subscription_capacity = kMaxCapacity,
                         .memory_limit = 24 * 1024});
  FUZZ_CHECK(k.stats().memory_used == 0);
  std::vector<std::unique_ptr<ModelHandle>> handles;  // every handle ever registered
  std::vector<std::unique_ptr<Waiter>> waiters;       // coroutine waits, pending or done
  auto loop = std::make_unique<EventLoop>();
  std::uint64_t notifications = 0, rejected = 0;
  std::uint32_t live = 0;

  auto pick = [&](std::uint8_t b) -> ModelHandle* {
    return handles.empty() ? nullptr : handles[b % handles.size()].get();
  };
  // A coroutine wait that has run saw a seq above its ticket, or closed (unregistered), or was
  // refused at once (unknown_handle, limit_exceeded).
  auto check_waiters = [&] {
    for (auto& w : waiters) {
      if (!w->done) continue;
      if (w->result) {
        FUZZ_CHECK(w->result->seq > w->ticket);
      } else {
        const Errc e = w->result.error();
        FUZZ_CHECK(e == Errc::closed || e == Errc::unknown_handle || e == Errc::limit_exceeded);
      }
    }
  };

  for (int steps = 0; !in.empty() && steps < 4096; ++steps) {
    const std::uint8_t op = in.byte() % 14;
    const std::uint8_t a = in.byte();
    switch (op) {
      case 0: {  // register
        const std::uint8_t flags = in.byte();
        const std::uint32_t hint = in.byte() % 48;
        const std::string text(hint, 'h');
        HandleOptions o{.debug_hint = text,
                        .producers = (flags & 1) != 0 ? Producers::single : Producers::multi,
                        .max_waiters = (flags >> 1) % 4u,
                        .max_subscribers = (flags >> 3) % 4u};
        auto h = k.register_handle(o);
        if (h) {
          FUZZ_CHECK(live < kMaxHandles);
          auto m = std::make_unique<ModelHandle>();
          m->handle = *h;
          m->max_waiters = o.max_waiters;
          m->max_subscribers = o.max_subscribers;
          for (auto& old : handles) FUZZ_CHECK(old->handle != *h);  // never reissued
          handles.push_back(std::move(m));
          ++live;
        } else {
          FUZZ_CHECK(h.error() == Errc::limit_exceeded || h.error() == Errc::out_of_memory);
          FUZZ_CHECK(h.error() != Errc::limit_exceeded || live == kMaxHandles);
        }
        break;
      }
      case 1: {  // unregister (live or stale)
        ModelHandle* m = pick(a);
        if (m == nullptr) break;
        auto r = k.unregister_handle(m->handle);
        FUZZ_CHECK(r.has_value() == m->live);
        if (m->live) {
          m->live = false;
          m->parked = 0;
          --live;
          loop->poll();  // closed waits resume
        }
        break;
      }
      case 2: {  // notify a handle (live or stale)
        ModelHandle* m = pick(a);
        if (m == nullptr) break;
        const auto arg = static_cast<std::int64_t>(in.u64());
        auto r = k.notify(m->handle, arg);
        if (!m->live) {
          FUZZ_CHECK(r.error() == Errc::unknown_handle);
          ++rejected;
          break;
        }
        FUZZ_CHECK(r.has_value());
        FUZZ_CHECK(r->seq == ++m->seq);
        FUZZ_CHECK(r->delivered + r->dropped == m->subs.size());
        FUZZ_CHECK(r->woken == m->parked);
        m->parked = 0;
        ++notifications;
        for (auto& s : m->subs) ++s->observed;
        break;
      }
      case 3: {  // notify a forged handle
        const Handle forged = Handle::from_raw(in.u64());
        bool real = false;
        for (auto& m : handles) real = real || (m->live && m->handle == forged);
        if (real) break;
        FUZZ_CHECK(k.notify(forged, 1).error() == Errc::unknown_handle);
        FUZZ_CHECK(k.observe(forged).error() == Errc::unknown_handle);
        FUZZ_CHECK(k.subscribe(forged, {.capacity = 1}).error() == Errc::unknown_handle);
        FUZZ_CHECK(k.stats(forged).error() == Errc::unknown_handle);
        ++rejected;
        break;
      }
      case 4: {  // subscribe with any capacity
        ModelHandle* m = pick(a);
        if (m == nullptr) break;
        const std::uint32_t capacity = in.byte() % (kMaxCapacity + 8);
        const Overflow overflow =
            (in.byte() & 1) != 0 ? Overflow::keep_latest : Overflow::drop_newest;
        auto s = k.subscribe(m->handle, {.capacity = capacity, .overflow = overflow});
        if (capacity == 0 || capacity > kMaxCapacity) {
          FUZZ_CHECK(s.error() == Errc::invalid_argument);
        } else if (!m->live) {
          FUZZ_CHECK(s.error() == Errc::unknown_handle);
        } else if (m->subs.size() >= m->max_subscribers) {
          FUZZ_CHECK(s.error() == Errc::limit_exceeded);
        } else if (s) {
          auto ms = std::make_unique<ModelSub>();
          ms->capacity = s->capacity();
          FUZZ_CHECK(ms->capacity >= capacity && ms->capacity < 2 * capacity + 1);
          ms->sub = std::move(s).value();
          m->subs.push_back(std::move(ms));
        } else {
          FUZZ_CHECK(s.error() == Errc::out_of_memory);
        }
        break;
      }
      case 5: {  // drop a subscription
        ModelHandle* m = pick(a);
        if (m == nullptr || m->subs.empty()) break;
        m->subs.erase(m->subs.begin() + in.byte() % m->subs.size());
        break;
      }
      case 6:
      case 7: {  // try_recv / try_recv_batch
        ModelHandle* m = pick(a);
        if (m == nullptr || m->subs.empty()) break;
        ModelSub& s = *m->subs[in.byte() % m->subs.size()];
        Notification buf[8];
        std::size_t got = 0;
        if (op == 6) {
          auto r = s.sub.try_recv();
          if (r) {
            buf[0] = *r;
            got = 1;
          } else {
            FUZZ_CHECK(r.error() == (m->live ? Errc::empty : Errc::closed));
          }
        } else {
          got = s.sub.try_recv_batch(std::span<Notification>(buf, in.byte() % 9));
        }
        for (std::size_t i = 0; i < got; ++i) {
          FUZZ_CHECK(buf[i].seq > s.last_seq);  // one thread notifies: strictly increasing
          FUZZ_CHECK(buf[i].seq <= m->seq);
          s.last_seq = buf[i].seq;
        }
        s.received += got;
        break;
      }
      case 8: {  // observe
        ModelHandle* m = pick(a);
        if (m == nullptr) break;
        auto t = k.observe(m->handle);
        FUZZ_CHECK(m->live ? t.value().seq == m->seq : t.error() == Errc::unknown_handle);
        break;
      }
      case 9: {  // wait_blocking with zero timeout
        ModelHandle* m = pick(a);
        if (m == nullptr) break;
        const std::uint64_t ticket = in.byte() % 8;
        auto r =
            k.wait_blocking(m->handle, Ticket{ticket}, {.timeout = std::chrono::nanoseconds(0)});
        if (!m->live) {
          FUZZ_CHECK(r.error() == Errc::unknown_handle);
        } else if (ticket < m->seq) {
          FUZZ_CHECK(r.value().seq == m->seq);  // the latest one
        } else {
          FUZZ_CHECK(r.error() == Errc::timed_out || r.error() == Errc::limit_exceeded);
          FUZZ_CHECK(r.error() != Errc::limit_exceeded || m->max_waiters <= m->parked);
        }
        break;
      }
      case 10: {  // coroutine wait for the next notification
        ModelHandle* m = pick(a);
        if (m == nullptr) break;
        auto w = std::make_unique<Waiter>();
        w->model = m;
        w->ticket = m->seq;
        spawn(*loop, coroutine_wait(k, m->handle, m->seq, *w));
        loop->poll();
        if (!w->done) {
          FUZZ_CHECK(m->live && m->parked < m->max_waiters);
          ++m->parked;
        } else {
          FUZZ_CHECK(!m->live ? w->result.error() == Errc::unknown_handle
                              : w->result.error() == Errc::limit_exceeded);
        }
        waiters.push_back(std::move(w));
        break;
      }
      case 11:  // run the loop
        loop->poll();
        break;
      case 12: {  // destroy the loop mid-wait: its suspended waits are withdrawn
        loop.reset();
        for (auto& m : handles) m->parked = 0;
        waiters.clear();
        loop = std::make_unique<EventLoop>();
        break;
      }
      default: {  // stats
        ModelHandle* m = pick(a);
        if (m == nullptr) break;
        auto s = k.stats(m->handle);
        FUZZ_CHECK(m->live == s.has_value());
        break;
      }
    }
    check_waiters();

    // Invariants after every step.
    std::uint32_t model_live = 0;
    for (auto& m : handles) {
      if (!m->live) {
        FUZZ_CHECK(k.observe(m->handle).error() == Errc::unknown_handle);  // stale stays dead
        continue;
      }
      ++model_live;
      const HandleStats hs = k.stats(m->handle).value();
      FUZZ_CHECK(hs.notifications == m->seq);
      FUZZ_CHECK(hs.subscriptions == m->subs.size());
      FUZZ_CHECK(hs.waiters == m->parked);
      for (auto& s : m->subs) {
        FUZZ_CHECK(s->sub.size() <= s->capacity + 1);
        FUZZ_CHECK(s->received + s->sub.size() + s->sub.dropped() == s->observed);
      }
    }
    const KernelStats ks = k.stats();
    FUZZ_CHECK(ks.live_handles == model_live);
    FUZZ_CHECK(ks.notifications == notifications);
    FUZZ_CHECK(ks.rejected == rejected);
    FUZZ_CHECK(ks.memory_used <= 24 * 1024);
  }

  // Release everything: memory returns to its baseline.
  loop.reset();
  waiters.clear();
  for (auto& m : handles) {
    m->subs.clear();
    if (m->live) FUZZ_CHECK(k.unregister_handle(m->handle).has_value());
  }
  FUZZ_CHECK(k.stats().memory_used == 0);
  FUZZ_CHECK(k.stats().live_handles == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  run(in);
  return 0;
}
