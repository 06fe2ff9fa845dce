#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "herald/executor.hpp"

namespace herald {

template <class T = void>
class Task;

namespace detail {

/// A work item that resumes one coroutine frame.
struct ResumeWork : Executor::Work {
  std::coroutine_handle<> frame{};
};
/// Posts `work` (which resumes `frame`) to `loop`.
void start_on(EventLoop& loop, std::coroutine_handle<> frame, ResumeWork& work) noexcept;

/// What every Task promise holds: who to resume at the end, and, for a spawned task, the loop
/// that owns the frame and the work item that starts it.
struct TaskPromiseBase {
  std::coroutine_handle<> continuation{};
  EventLoop* owner = nullptr;
  ResumeWork start{};
  std::exception_ptr error{};

  TaskPromiseBase() = default;
  TaskPromiseBase(const TaskPromiseBase&) = delete;
  /// A spawned task destroyed before it started withdraws its start item from the loop.
  ~TaskPromiseBase();

  std::suspend_always initial_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      TaskPromiseBase& p = self.promise();
      if (p.continuation) return p.continuation;  // symmetric transfer: no stack growth
      if (p.owner != nullptr)
        detail::LoopAccess::release(*p.owner, self.address());  // spawned: the loop frees it
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
};

template <class T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

/// A lazy, move-only coroutine producing T. Starts when awaited (or spawned); the awaiting
/// coroutine resumes by symmetric transfer when it ends, so chains of any depth do not grow the
/// stack. An exception escaping the body is rethrown to the awaiter.
template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using handle_type = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(handle_type h) noexcept : handle_(h) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  explicit operator bool() const noexcept { return static_cast<bool>(handle_); }
  bool done() const noexcept { return !handle_ || handle_.done(); }
  /// Gives up ownership of the frame.
  handle_type release() noexcept { return std::exchange(handle_, {}); }

  struct Awaiter {
    handle_type handle;
    bool await_ready() const noexcept { return !handle || handle.done(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
      handle.promise().continuation = awaiting;
      return handle;
    }
    T await_resume() { return handle.promise().take(); }
  };
  Awaiter operator co_await() && noexcept { return Awaiter{handle_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{handle_}; }

 private:
  handle_type handle_{};
};

namespace detail {
template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}
}  // namespace detail

/// The loop owns the task and starts it when it runs; its frame is destroyed when it finishes, or
/// by the loop's destructor if it never does. An exception escaping a spawned task terminates.
void spawn(EventLoop& loop, Task<void> task);

namespace detail {
struct SyncWaitTask {
  struct promise_type {
    std::atomic<bool>* done = nullptr;
    SyncWaitTask get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        h.promise().done->store(true, std::memory_order_release);
      }
      void await_resume() const noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }  // the awaited Task catches
  };
  std::coroutine_handle<promise_type> handle;
};

template <class T>
SyncWaitTask sync_wait_driver(Task<T>& task, std::optional<T>& out, std::exception_ptr& error) {
  try {
    out.emplace(co_await std::move(task));
  } catch (...) {
    error = std::current_exception();
  }
}
inline SyncWaitTask sync_wait_driver(Task<void>& task, std::optional<bool>& out,
                                     std::exception_ptr& error) {
  try {
    co_await std::move(task);
    out.emplace(true);
  } catch (...) {
    error = std::current_exception();
  }
}
}  // namespace detail

/// Runs `loop` on this thread until `task` ends; returns its value (rethrows its exception).
template <class T>
T sync_wait(EventLoop& loop, Task<T> task) {
  using Slot = std::conditional_t<std::is_void_v<T>, bool, T>;
  std::optional<Slot> out;
  std::exception_ptr error;
  std::atomic<bool> done{false};
  detail::SyncWaitTask driver = detail::sync_wait_driver(task, out, error);
  driver.handle.promise().done = &done;
  detail::ResumeWork start;
  detail::start_on(loop, driver.handle, start);
  detail::LoopAccess::run_until(loop, done);
  driver.handle.destroy();
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) return std::move(*out);
}

}  // namespace herald
