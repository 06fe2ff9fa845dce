// Dispatcher: workers that claim due entries, run the handler, and ack or fail; a keeper thread
// that extends the leases of running handlers; stop() that lets running handlers finish and
// releases what was claimed but not started.
//
// Waking: a worker takes a ticket on its wake handle *before* it claims, so an enqueue committed
// after an empty claim has notified a seq above the ticket and the wait returns at once (the
// kernel's observe -> check -> wait pattern). Without kernel notification the wake handle
// belongs to a private kernel and is never notified: the wait is then an interruptible sleep
// (the poll), cut short by stop() through the stop token.
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>

#include "herald/outbox.hpp"
#include "outbox/json.hpp"

namespace herald {

struct Dispatcher::Counters {
  std::atomic<std::uint64_t> claimed{0}, acked{0}, retried{0}, dead{0}, released{0}, extended{0},
      wakeups{0}, polls{0}, errors{0};
  std::atomic<std::uint32_t> in_flight{0};
};

/// The entries whose handlers run now (one slot per worker), for the lease keeper; and the
/// keeper's and the coroutine workers' shutdown signals.
struct Dispatcher::InFlight {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<const Entry*> running;  // slot per worker; nullptr when idle
  bool keeper_stop = false;
};

namespace {

std::atomic<std::uint64_t> next_dispatcher_id{1};

std::string default_owner() {
  char host[256] = "host";
  (void)::gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  return std::string(host) + ":" + std::to_string(::getpid()) + ":d" +
         std::to_string(next_dispatcher_id.fetch_add(1, std::memory_order_relaxed));
}

}  // namespace

Dispatcher::Dispatcher(Outbox& outbox, DispatcherOptions options, Handler handler)
    : outbox_(outbox),
      options_(std::move(options)),
      handler_(std::move(handler)),
      counters_(std::make_unique<Counters>()),
      in_flight_(std::make_unique<InFlight>()) {
  if (options_.owner.empty()) options_.owner = default_owner();
  lease_ = options_.lease.count() > 0 ? options_.lease : outbox_.options().lease;
  options_.poll_initial = std::max(options_.poll_initial, std::chrono::milliseconds(1));
  options_.poll_max = std::max(options_.poll_max, options_.poll_initial);
  options_.batch = std::max<std::uint32_t>(options_.batch, 1);
  // The private kernel: sleeps for polling, and the fallback if the queue's handle is gone.
  private_kernel_ = std::make_unique<Kernel>(KernelOptions{
      .max_handles = 4, .max_subscription_capacity = 1, .memory_limit = std::size_t{1} << 20});
  const OutboxOptions& o = outbox_.options();
  if (o.notify == NotifyMode::kernel && o.kernel != nullptr && !options_.queue.empty()) {
    kernel_ = o.kernel;
    wake_ = outbox_.handle(options_.queue);
  }
  // Never notified: waiting on it is a sleep that stop() cuts short.
  poll_wake_ = private_kernel_
                   ->register_handle({.debug_hint = "dispatcher-poll",
                                      .max_waiters = std::max<std::uint32_t>(64, options_.workers)})
                   .value_or(Handle{});
  if (!wake_) {
    kernel_ = private_kernel_.get();
    wake_ = poll_wake_;
  }
}

Dispatcher::~Dispatcher() { stop(); }

Result<void> Dispatcher::start() {
  std::lock_guard lock(stop_mutex_);
  if (started_ || options_.queue.empty() || options_.workers == 0 || !handler_ || !wake_)
    return Errc::invalid_argument;
  started_ = true;
  in_flight_->running.assign(options_.workers, nullptr);
  keeper_ = std::thread([this] { keep_leases(); });
  running_.store(options_.workers);
  for (unsigned i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this, i] { run_worker(i); });
  }
  return {};
}

Result<void> Dispatcher::start(EventLoop& loop) {
  std::lock_guard lock(stop_mutex_);
  if (started_ || options_.queue.empty() || options_.workers == 0 || !handler_ || !wake_)
    return Errc::invalid_argument;
  started_ = true;
  loop_ = &loop;
  in_flight_->running.assign(options_.workers, nullptr);
  keeper_ = std::thread([this] { keep_leases(); });
  running_.store(options_.workers);
  for (unsigned i = 0; i < options_.workers; ++i) spawn(loop, run_coroutine(i));
  return {};
}

void Dispatcher::stop() {
  std::unique_lock lock(stop_mutex_);
  if (!started_) return;
  stop_.request_stop();  // cancels every wait on the wake handle
  if (loop_ != nullptr && loop_->running_in_this_thread()) return;  // only a request
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  {
    std::unique_lock guard(in_flight_->mutex);
    in_flight_->changed.wait(guard, [&] { return running_.load() == 0; });
    in_flight_->keeper_stop = true;
  }
  in_flight_->changed.notify_all();
  if (keeper_.joinable()) keeper_.join();
  // Anything this owner still holds was claimed and never started: it is due again now.
  if (auto n = outbox_.release_leases(options_.owner); n && *n > 0) {
    counters_->released.fetch_add(*n, std::memory_order_relaxed);
  }
  started_ = false;
  loop_ = nullptr;
}

bool Dispatcher::stopped() const noexcept { return running_.load() == 0; }

std::chrono::milliseconds Dispatcher::next_wait(std::chrono::milliseconds& poll_backoff) const {
  std::chrono::milliseconds wait = options_.poll_max;
  if (kernel_ == private_kernel_.get()) {  // polling: 100 ms, 200 ms, ... up to poll_max
    wait = poll_backoff;
    poll_backoff = std::min(poll_backoff * 2, options_.poll_max);
  }
  // A delayed entry or a lease that expires earlier shortens the wait.
  if (auto due = outbox_.next_due_ms(options_.queue); due && *due) {
    const auto until = std::chrono::milliseconds(**due - Outbox::now_ms());
    wait = std::clamp(until, std::chrono::milliseconds(1), wait);
  }
  return wait;
}

bool Dispatcher::process(std::vector<Entry>& entries, unsigned index) {
  Counters& c = *counters_;
  c.claimed.fetch_add(entries.size(), std::memory_order_relaxed);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    if (stop_.stop_requested()) {  // never started: give it back as it was
      if (outbox_.release(e, options_.owner)) c.released.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    {
      std::lock_guard guard(in_flight_->mutex);
      in_flight_->running[index] = &e;
    }
    c.in_flight.fetch_add(1, std::memory_order_relaxed);
    HandlerOutcome outcome;
    try {
      outcome = handler_(e);
    } catch (const std::exception& ex) {
      outcome = HandlerOutcome::retry(ex.what());
    } catch (...) {
      outcome = HandlerOutcome::retry("the handler threw");
    }
    {
      std::lock_guard guard(in_flight_->mutex);
      in_flight_->running[index] = nullptr;
    }
    c.in_flight.fetch_sub(1, std::memory_order_relaxed);
    Result<void> r;
    switch (outcome.kind) {
      case HandlerOutcome::Kind::done:
        r = outbox_.ack(e, options_.owner);
        if (r) c.acked.fetch_add(1, std::memory_order_relaxed);
        break;
      case HandlerOutcome::Kind::retry:
      case HandlerOutcome::Kind::dead: {
        const bool permanent = outcome.kind == HandlerOutcome::Kind::dead;
        r = outbox_.fail(e, options_.owner, outcome.error, permanent);
        if (r) {
          const bool dead = permanent || e.attempts >= outbox_.options().retry.max_attempts;
          (dead ? c.dead : c.retried).fetch_add(1, std::memory_order_relaxed);
        }
        break;
      }
    }
    if (!r) c.errors.fetch_add(1, std::memory_order_relaxed);
  }
  return !entries.empty();
}

void Dispatcher::run_worker(unsigned index) {
  const std::stop_token token = stop_.get_token();
  std::chrono::milliseconds backoff = options_.poll_initial;
  while (!token.stop_requested()) {
    const Ticket seen = kernel_->observe(wake_).value_or(Ticket{0});  // before the claim
    auto claimed = outbox_.claim(options_.queue, options_.owner, options_.batch, lease_);
    if (claimed && !claimed->empty()) {
      backoff = options_.poll_initial;
      process(*claimed, index);
      continue;
    }
    if (!claimed) counters_->errors.fetch_add(1, std::memory_order_relaxed);
    const auto timeout = next_wait(backoff);
    auto woke = kernel_->wait_blocking(wake_, seen, {.timeout = timeout, .stop = &token});
    if (woke) {
      counters_->wakeups.fetch_add(1, std::memory_order_relaxed);
    } else if (woke.error() == Errc::timed_out) {
      counters_->polls.fetch_add(1, std::memory_order_relaxed);
    } else if (woke.error() != Errc::cancelled) {  // the queue's handle is gone: sleep, poll
      (void)private_kernel_->wait_blocking(poll_wake_, Ticket{0},
                                           {.timeout = timeout, .stop = &token});
    }
  }
  std::lock_guard guard(in_flight_->mutex);
  running_.fetch_sub(1);
  in_flight_->changed.notify_all();
}

Task<void> Dispatcher::run_coroutine(unsigned index) {
  const std::stop_token token = stop_.get_token();
  std::chrono::milliseconds backoff = options_.poll_initial;
  while (!token.stop_requested()) {
    const Ticket seen = kernel_->observe(wake_).value_or(Ticket{0});
    auto claimed = outbox_.claim(options_.queue, options_.owner, options_.batch, lease_);
    if (claimed && !claimed->empty()) {
      backoff = options_.poll_initial;
      process(*claimed, index);
      continue;
    }
    if (!claimed) counters_->errors.fetch_add(1, std::memory_order_relaxed);
    const auto timeout = next_wait(backoff);
    auto woke = co_await kernel_->wait(wake_, seen, {.timeout = timeout, .stop = &token});
    if (woke) {
      counters_->wakeups.fetch_add(1, std::memory_order_relaxed);
    } else if (woke.error() == Errc::timed_out) {
      counters_->polls.fetch_add(1, std::memory_order_relaxed);
    } else if (woke.error() != Errc::cancelled) {
      break;  // the queue's handle is gone (the Outbox is closing)
    }
  }
  // Claimed-but-unstarted entries were released in process(); tell stop() this worker ended.
  std::lock_guard guard(in_flight_->mutex);
  running_.fetch_sub(1);
  in_flight_->changed.notify_all();
}

void Dispatcher::keep_leases() {
  const auto period = std::max(lease_ / 3, std::chrono::milliseconds(1));
  std::unique_lock guard(in_flight_->mutex);
  while (!in_flight_->keeper_stop) {
    in_flight_->changed.wait_for(guard, period, [&] { return in_flight_->keeper_stop; });
    if (in_flight_->keeper_stop) break;
    for (const Entry* e : in_flight_->running) {
      // The worker clears its slot under this mutex before it acks, so `e` is alive here.
      if (e != nullptr && outbox_.extend(*e, options_.owner, lease_)) {
        counters_->extended.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
}

DispatcherStats Dispatcher::stats() const noexcept {
  const Counters& c = *counters_;
  constexpr auto r = std::memory_order_relaxed;
  return {c.claimed.load(r),  c.acked.load(r),    c.retried.load(r), c.dead.load(r),
          c.released.load(r), c.extended.load(r), c.wakeups.load(r), c.polls.load(r),
          c.errors.load(r),   c.in_flight.load(r)};
}

std::string Dispatcher::describe() const {
  const DispatcherStats s = stats();
  std::string j = "{\"queue\":" + outbox_detail::json_string(options_.queue);
  j += ",\"owner\":" + outbox_detail::json_string(options_.owner);
  j += ",\"workers\":" + std::to_string(options_.workers);
  j += ",\"batch\":" + std::to_string(options_.batch);
  j += ",\"lease_ms\":" + std::to_string(lease_.count());
  j += ",\"wakes_on\":";
  j += kernel_ == private_kernel_.get() ? "\"polling\"" : "\"kernel handle\"";
  j += ",\"claimed\":" + std::to_string(s.claimed) + ",\"acked\":" + std::to_string(s.acked);
  j += ",\"retried\":" + std::to_string(s.retried) + ",\"dead\":" + std::to_string(s.dead);
  j +=
      ",\"released\":" + std::to_string(s.released) + ",\"extended\":" + std::to_string(s.extended);
  j += ",\"wakeups\":" + std::to_string(s.wakeups) + ",\"polls\":" + std::to_string(s.polls);
  j += ",\"errors\":" + std::to_string(s.errors) + ",\"in_flight\":" + std::to_string(s.in_flight);
  j += "}";
  return j;
}

}  // namespace herald
