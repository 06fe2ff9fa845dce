// EventLoop: Vyukov's intrusive MPSC ready queue, a timer heap, and an eventfd to park on.

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <coroutine>
#include <system_error>
#include <thread>

#include "config.hpp"
#include "herald/executor.hpp"
#include "herald/task.hpp"

namespace herald {
namespace {

thread_local Executor* t_current = nullptr;
thread_local const char t_thread_token = 0;  // its address names the thread

/// Marks the calling thread as running `loop` for the scope.
class RunningScope {
 public:
  RunningScope(EventLoop& loop, std::atomic<const void*>& runner) noexcept
      : previous_(t_current), runner_(runner) {
    t_current = &loop;
    // relaxed: only the owning thread compares it with its own token.
    runner_.store(&t_thread_token, std::memory_order_relaxed);
  }
  ~RunningScope() {
    runner_.store(nullptr, std::memory_order_relaxed);
    t_current = previous_;
  }
  RunningScope(const RunningScope&) = delete;
  RunningScope& operator=(const RunningScope&) = delete;

 private:
  Executor* previous_;
  std::atomic<const void*>& runner_;
};

}  // namespace

bool Executor::withdraw(Work&) noexcept { return false; }
bool Executor::running_in_this_thread() const noexcept { return false; }

Executor* current_executor() noexcept { return t_current; }

EventLoop::EventLoop() : head_(&stub_), tail_(&stub_) {
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  timers_.reserve(256);  // arming a timer allocates only past this many at once
}

EventLoop::~EventLoop() {
  // Destroy what the loop owns as if on the loop thread: awaiters in those frames withdraw their
  // waits, timers and queued resumptions from this loop.
  RunningScope scope(*this, runner_);
  std::vector<void*> frames;
  {
    std::lock_guard lock(spawned_mutex_);
    frames.swap(spawned_);
  }
  for (void* frame : frames) std::coroutine_handle<>::from_address(frame).destroy();
  while (pop_ready() != nullptr) {
  }  // resumptions of frames this loop does not own are dropped with it
  ::close(event_fd_);
}

// ---- the ready queue ----

void EventLoop::push(Work& work) noexcept {
  work.next.store(nullptr, std::memory_order_relaxed);
  // acq_rel: release publishes the work's fields (and what the poster wrote before) to the loop,
  // which acquires them through `next` below or through head_.
  Work* prev = head_.exchange(&work, std::memory_order_acq_rel);
  prev->next.store(&work, std::memory_order_release);  // (1) links it; pairs with (2)
}

void EventLoop::post(Work& work) noexcept {
  push(work);
  // Signal the eventfd on the idle->pending edge only: a busy loop costs posters no syscall.
  // acq_rel: pairs with clear_signal(), so a loop that clears after this sees the link above.
  if (!signaled_.exchange(true, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(event_fd_, &one, sizeof one);
  }
}

Executor::Work* EventLoop::pop_ready() noexcept {
  if (Work* w = local_head_) {
    local_head_ = w->next.load(std::memory_order_relaxed);
    if (local_head_ == nullptr) local_tail_ = nullptr;
    return w;
  }
  return pop_queue();
}

Executor::Work* EventLoop::pop_queue() noexcept {
  Work* tail = tail_;
  Work* next = tail->next.load(std::memory_order_acquire);  // (2)
  if (tail == &stub_) {
    if (next == nullptr) return nullptr;
    tail_ = next;
    tail = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (next != nullptr) {
    tail_ = next;
    return tail;
  }
  if (tail != head_.load(std::memory_order_acquire)) return nullptr;  // a poster is mid-link
  push(stub_);
  next = tail->next.load(std::memory_order_acquire);
  if (next != nullptr) {
    tail_ = next;
    return tail;
  }
  return nullptr;
}

bool EventLoop::withdraw(Work& work) noexcept {
  if (!running_in_this_thread()) return false;
  // Move everything queued so far into the loop-private list (keeping FIFO order), then unlink.
  for (Work* w = pop_queue(); w != nullptr; w = pop_queue()) {
    w->next.store(nullptr, std::memory_order_relaxed);
    if (local_tail_ != nullptr) {
      local_tail_->next.store(w, std::memory_order_relaxed);
    } else {
      local_head_ = w;
    }
    local_tail_ = w;
  }
  Work* prev = nullptr;
  for (Work* w = local_head_; w != nullptr; prev = w, w = w->next.load(std::memory_order_relaxed)) {
    if (w != &work) continue;
    Work* next = w->next.load(std::memory_order_relaxed);
    if (prev != nullptr) {
      prev->next.store(next, std::memory_order_relaxed);
    } else {
      local_head_ = next;
    }
    if (local_tail_ == w) local_tail_ = prev;
    return true;
  }
  return false;
}

std::size_t EventLoop::run_ready() noexcept {
  std::size_t ran = 0;
  // Bounded by what is queued at the start plus what those items post: a coroutine that keeps
  // reposting itself cannot starve timers, because run() alternates with run_timers().
  for (std::size_t budget = 1024; budget != 0; --budget) {
    Work* w = pop_ready();
    if (w == nullptr) break;
    w->run(w);
    ++ran;
  }
  return ran;
}

void EventLoop::clear_signal() noexcept {
  // acq_rel: pairs with post(); see there.
  if (signaled_.exchange(false, std::memory_order_acq_rel)) {
    std::uint64_t value = 0;
    [[maybe_unused]] const ssize_t n = ::read(event_fd_, &value, sizeof value);
  }
}

// ---- timers ----

bool EventLoop::arm(detail::TimerNode& timer) noexcept {
  bool earliest = false;
  {
    std::lock_guard lock(timer_mutex_);
    try {
      timers_.push_back(&timer);
    } catch (...) {
      return false;
    }
    timer.heap_index = timers_.size() - 1;
    timer.state.store(detail::TimerNode::kArmed, std::memory_order_relaxed);
    heap_up(timer.heap_index);
    earliest = timers_.front() == &timer;
  }
  if (earliest && !running_in_this_thread() &&
      !signaled_.exchange(true, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;  // a parked loop recomputes its deadline
    [[maybe_unused]] const ssize_t n = ::write(event_fd_, &one, sizeof one);
  }
  return true;
}

void EventLoop::disarm(detail::TimerNode& timer) noexcept {
  {
    std::lock_guard lock(timer_mutex_);
    const std::uint32_t state = timer.state.load(std::memory_order_relaxed);
    if (state == detail::TimerNode::kArmed) {
      heap_remove(timer.heap_index);
      timer.state.store(detail::TimerNode::kIdle, std::memory_order_relaxed);
      return;
    }
    if (state == detail::TimerNode::kIdle || running_in_this_thread()) return;
  }
  // Firing on the loop thread right now: its callback never blocks; wait for it to finish.
  // acquire: pairs with the release in run_timers(); the callback's effects are visible.
  while (timer.state.load(std::memory_order_acquire) == detail::TimerNode::kFiring)
    std::this_thread::yield();
}

std::size_t EventLoop::run_timers() noexcept {
  std::size_t fired = 0;
  const auto now = std::chrono::steady_clock::now();
  for (;;) {
    detail::TimerNode* timer = nullptr;
    {
      std::lock_guard lock(timer_mutex_);
      if (timers_.empty() || timers_.front()->deadline > now) break;
      timer = timers_.front();
      heap_remove(0);
      timer->state.store(detail::TimerNode::kFiring, std::memory_order_relaxed);
    }
    timer->fire(timer);
    // release: a disarm() waiting on another thread sees the callback's effects.
    timer->state.store(detail::TimerNode::kIdle, std::memory_order_release);
    ++fired;
  }
  return fired;
}

std::chrono::steady_clock::time_point EventLoop::next_deadline() noexcept {
  std::lock_guard lock(timer_mutex_);
  return timers_.empty() ? std::chrono::steady_clock::time_point::max() : timers_.front()->deadline;
}

void EventLoop::heap_up(std::size_t i) noexcept {
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (timers_[parent]->deadline <= timers_[i]->deadline) break;
    std::swap(timers_[parent], timers_[i]);
    timers_[parent]->heap_index = parent;
    timers_[i]->heap_index = i;
    i = parent;
  }
}

void EventLoop::heap_down(std::size_t i) noexcept {
  for (;;) {
    const std::size_t left = 2 * i + 1;
    const std::size_t right = left + 1;
    std::size_t least = i;
    if (left < timers_.size() && timers_[left]->deadline < timers_[least]->deadline) least = left;
    if (right < timers_.size() && timers_[right]->deadline < timers_[least]->deadline)
      least = right;
    if (least == i) return;
    std::swap(timers_[least], timers_[i]);
    timers_[least]->heap_index = least;
    timers_[i]->heap_index = i;
    i = least;
  }
}

void EventLoop::heap_remove(std::size_t i) noexcept {
  const std::size_t last = timers_.size() - 1;
  if (i != last) {
    timers_[i] = timers_[last];
    timers_[i]->heap_index = i;
  }
  timers_.pop_back();
  if (i < timers_.size()) {
    heap_down(i);
    heap_up(i);
  }
}

// ---- running ----

void EventLoop::wait_for_work(std::chrono::steady_clock::time_point deadline,
                              bool wake_on_stop) noexcept {
  clear_signal();
  // Recheck after clearing: a post that landed before the clear is in the queue; one after it
  // writes the eventfd again.
  if (local_head_ != nullptr || tail_->next.load(std::memory_order_acquire) != nullptr ||
      tail_ != head_.load(std::memory_order_acquire) ||
      (wake_on_stop && stop_requested_.load(std::memory_order_acquire))) {
    return;
  }
  int timeout_ms = -1;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return;
    // Round up so the loop does not wake just before the deadline and spin.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    timeout_ms = static_cast<int>(std::min<long long>(ms, INT_MAX));
  }
  pollfd pfd{event_fd_, POLLIN, 0};
  ::poll(&pfd, 1, timeout_ms);
}

void EventLoop::run() {
  RunningScope scope(*this, runner_);
  // acq_rel: the request is consumed, so one stop() ends one run().
  while (!stop_requested_.exchange(false, std::memory_order_acq_rel)) {
    const std::size_t did = run_ready() + run_timers();
    if (did == 0) wait_for_work(next_deadline(), true);
  }
}

void EventLoop::run_until(const std::atomic<bool>& done) {
  RunningScope scope(*this, runner_);
  while (!done.load(std::memory_order_acquire)) {
    const std::size_t did = run_ready() + run_timers();
    // A pending stop() is left for the next run(): it must not turn this wait into a spin.
    if (did == 0 && !done.load(std::memory_order_acquire)) wait_for_work(next_deadline(), false);
  }
}

std::size_t EventLoop::poll() {
  RunningScope scope(*this, runner_);
  clear_signal();
  const std::size_t did = run_ready() + run_timers();
  // Work still queued keeps native_handle() readable for the embedding loop.
  if ((local_head_ != nullptr || tail_->next.load(std::memory_order_acquire) != nullptr) &&
      !signaled_.exchange(true, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(event_fd_, &one, sizeof one);
  }
  return did;
}

void EventLoop::stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  if (!signaled_.exchange(true, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(event_fd_, &one, sizeof one);
  }
}

bool EventLoop::running_in_this_thread() const noexcept {
  return runner_.load(std::memory_order_relaxed) == &t_thread_token;
}

// ---- spawned tasks ----

void EventLoop::adopt(void* frame_address) {
  std::lock_guard lock(spawned_mutex_);
  spawned_.push_back(frame_address);
}

void EventLoop::release(void* frame_address) noexcept {
  {
    std::lock_guard lock(spawned_mutex_);
    auto it = std::find(spawned_.begin(), spawned_.end(), frame_address);
    if (it == spawned_.end()) return;  // the destructor already took it
    *it = spawned_.back();
    spawned_.pop_back();
  }
  std::coroutine_handle<>::from_address(frame_address).destroy();
}

namespace detail {

namespace {
void resume_frame(Executor::Work* work) noexcept {
  auto* w = static_cast<ResumeWork*>(work);
  std::exchange(w->frame, {}).resume();
}
}  // namespace

void start_on(EventLoop& loop, std::coroutine_handle<> frame, ResumeWork& work) noexcept {
  work.frame = frame;
  work.run = &resume_frame;
  loop.post(work);
}

TaskPromiseBase::~TaskPromiseBase() {
  // A spawned task destroyed before it ever ran: its start item is still queued.
  if (owner != nullptr && start.frame) owner->withdraw(start);
}

}  // namespace detail

void spawn(EventLoop& loop, Task<void> task) {
  auto frame = task.release();
  if (!frame) return;
  frame.promise().owner = &loop;
  detail::LoopAccess::adopt(loop, frame.address());
  detail::start_on(loop, frame, frame.promise().start);
}

}  // namespace herald
