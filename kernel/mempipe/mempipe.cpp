// MemPipe: a broadcast byte pipe written only against the public kernel API.

#include "herald/mempipe.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>
#include <thread>

namespace herald {

namespace {
constexpr std::uint32_t kOpen = 0, kClosed = 1, kFailed = 2;
}  // namespace

/// Append-only storage: a chunk is linked (release) before the size that covers it is published,
/// and is never moved or freed while the pipe lives.
struct MemPipe::Chunk {
  std::atomic<Chunk*> next{nullptr};
  std::byte bytes[kChunkSize];
};

Result<std::unique_ptr<MemPipe>> MemPipe::create(Kernel& kernel, const MemPipeOptions& options) {
  auto h = kernel.register_handle(
      {.debug_hint = options.debug_hint, .producers = Producers::single, .max_waiters = 1024});
  if (!h) return h.error();
  auto* first = new (std::nothrow) Chunk;
  auto* pipe = first == nullptr ? nullptr : new (std::nothrow) MemPipe(kernel, *h, options);
  if (pipe == nullptr) {
    delete first;
    (void)kernel.unregister_handle(*h);
    return Errc::out_of_memory;
  }
  pipe->first_ = pipe->last_ = first;
  return std::unique_ptr<MemPipe>(pipe);
}

MemPipe::MemPipe(Kernel& kernel, Handle handle, const MemPipeOptions& options) noexcept
    : kernel_(kernel), handle_(handle), capacity_(options.capacity) {}

MemPipe::~MemPipe() {
  (void)kernel_.unregister_handle(handle_);  // waiting readers complete with closed -> EOF
  for (Chunk* c = first_; c != nullptr;) {
    Chunk* next = c->next.load(std::memory_order_relaxed);
    delete c;
    c = next;
  }
}

Result<void> MemPipe::write(std::span<const std::byte> data) {
  if (state_.load(std::memory_order_relaxed) != kOpen) return Errc::closed;
  const std::size_t size = size_.load(std::memory_order_relaxed);  // only the writer stores it
  if (capacity_ != 0 && data.size() > capacity_ - size) return Errc::full;
  if (data.empty()) return {};
  std::size_t done = 0;
  while (done < data.size()) {
    if (last_used_ == kChunkSize) {
      auto* fresh = new (std::nothrow) Chunk;
      if (fresh == nullptr) {
        publish(size + done);  // what was copied so far; the rest is reported as not written
        return Errc::out_of_memory;
      }
      // release: a reader that follows the link sees an initialised chunk.
      last_->next.store(fresh, std::memory_order_release);
      last_ = fresh;
      last_used_ = 0;
    }
    const std::size_t n = std::min(kChunkSize - last_used_, data.size() - done);
    std::memcpy(last_->bytes + last_used_, data.data() + done, n);
    last_used_ += n;
    done += n;
  }
  publish(size + done);
  return {};
}

void MemPipe::publish(std::size_t size) noexcept {
  // The pipe's handle is private and this is its only notifier, so the next notify's seq is
  // known. Seqlock writer: version odd (relaxed) ; release fence ; the pair ; version even
  // (release).
  const std::uint64_t v = pair_version_.load(std::memory_order_relaxed);
  pair_version_.store(v + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  // release: readers that acquire the new size see the bytes (and the chunk links).
  size_.store(size, std::memory_order_release);
  size_seq_.store(notified_ + 1, std::memory_order_relaxed);
  pair_version_.store(v + 2, std::memory_order_release);
  notify_once(static_cast<std::int64_t>(size));
}

void MemPipe::notify_once(std::int64_t arg) noexcept {
  const auto receipt = kernel_.notify(handle_, arg);
  if (receipt) {
    assert(receipt->seq == notified_ + 1 && "only the writer notifies a pipe's handle");
    notified_ = receipt->seq;
  }
}

MemPipe::Published MemPipe::published() const noexcept {
  for (;;) {
    // Seqlock reader: version (acquire) ; the pair ; acquire fence ; version again. Equal and
    // even: the pair is one the writer published whole.
    const std::uint64_t v = pair_version_.load(std::memory_order_acquire);
    if ((v & 1) == 0) {
      const Published p{size_.load(std::memory_order_acquire),
                        size_seq_.load(std::memory_order_relaxed)};
      std::atomic_thread_fence(std::memory_order_acquire);
      if (pair_version_.load(std::memory_order_relaxed) == v) return p;
    }
    std::this_thread::yield();  // the writer is between its two version stores
  }
}

void MemPipe::finish(std::uint32_t state, int error) noexcept {
  // One writer: the first close()/fail() counts; later ones change nothing.
  if (state_.load(std::memory_order_relaxed) != kOpen) return;
  error_ = error;
  state_.store(state, std::memory_order_release);  // publishes error_; pairs with try_read
  notify_once(-1);
}

void MemPipe::close() noexcept { finish(kClosed, 0); }

void MemPipe::fail(int error) noexcept { finish(kFailed, error == 0 ? -1 : error); }

MemPipe::Reader MemPipe::reader() noexcept { return Reader(this); }

bool MemPipe::Reader::try_read(std::span<std::byte> buffer, ReadResult& out,
                               Ticket& ticket) noexcept {
  if (own_error_ != 0) {
    out = ReadResult{.error = own_error_};
    return true;
  }
  // The ticket is the seq that announces the size read with it: a write after that size notifies
  // with a later seq, and every later seq brings bytes beyond it or the end, so a wait on the
  // ticket neither misses a write nor wakes for bytes this reader already took.
  // The state first: if it says closed, the size read after it is final; if open, the close
  // notifies with a seq above the ticket.
  const std::uint32_t state = pipe_->state_.load(std::memory_order_acquire);
  const Published pub = pipe_->published();
  ticket = Ticket{pub.seq};
  const std::size_t size = pub.size;
  if (position_ < size && !buffer.empty()) {
    if (chunk_ == nullptr) chunk_ = pipe_->first_;
    std::size_t copied = 0;
    const std::size_t want = std::min(buffer.size(), size - position_);
    while (copied < want) {
      if (offset_ == kChunkSize) {
        chunk_ = chunk_->next.load(std::memory_order_acquire);
        offset_ = 0;
      }
      const std::size_t n = std::min(kChunkSize - offset_, want - copied);
      std::memcpy(buffer.data() + copied, chunk_->bytes + offset_, n);
      offset_ += n;
      copied += n;
    }
    position_ += copied;
    out = ReadResult{.bytes = copied};
    return true;
  }
  if (buffer.empty()) {
    out = ReadResult{};
    return true;
  }
  // Everything written before `state` was set is below `size` (the writer publishes the size
  // before finishing), so EOF and the writer's error come only after all data.
  if (state == kClosed) {
    out = ReadResult{.eof = true};
    return true;
  }
  if (state == kFailed) {
    out = ReadResult{.error = pipe_->error_};
    return true;
  }
  return false;
}

bool MemPipe::Reader::ReadAwaitable::await_suspend(std::coroutine_handle<> awaiting) noexcept {
  for (;;) {
    wait_.emplace(reader_->pipe_->kernel_, reader_->pipe_->handle_, ticket_);
    if (!wait_->awaitable.await_ready() && wait_->awaitable.await_suspend(awaiting)) return true;
    if (settle()) return false;  // the wait completed at once: continue without suspending
  }
}

bool MemPipe::Reader::ReadAwaitable::settle() noexcept {
  const auto woke = wait_->awaitable.await_resume();
  wait_.reset();
  if (!woke) {
    result_ = ReadResult{.eof = true};  // the pipe is gone (its handle was unregistered)
    return true;
  }
  return reader_->try_read(buffer_, result_, ticket_);
}

ReadResult MemPipe::Reader::ReadAwaitable::await_resume() noexcept {
  // Resumed after a wait: a notification above the ticket means new data or the end was
  // published before it (the writer publishes, then notifies), so this read finds it.
  if (wait_.has_value() && !settle()) result_ = ReadResult{};
  return result_;
}

ReadResult MemPipe::Reader::read_blocking(std::span<std::byte> buffer) {
  for (;;) {
    ReadResult out;
    Ticket ticket{};
    if (try_read(buffer, out, ticket)) return out;
    auto r = pipe_->kernel_.wait_blocking(pipe_->handle_, ticket);
    if (!r) return ReadResult{.eof = true};
  }
}

}  // namespace herald
