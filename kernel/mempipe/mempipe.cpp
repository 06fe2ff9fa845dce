// MemPipe: a broadcast byte pipe written only against the public kernel API.

#include "herald/mempipe.hpp"

#include <algorithm>
#include <cstring>
#include <new>

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
        // Publish what was copied so far; report the rest as not written.
        size_.store(size + done, std::memory_order_release);
        (void)kernel_.notify(handle_, static_cast<std::int64_t>(size + done));
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
  // release: readers that acquire the new size see the bytes (and the chunk links).
  size_.store(size + done, std::memory_order_release);
  (void)kernel_.notify(handle_, static_cast<std::int64_t>(size + done));
  return {};
}

void MemPipe::finish(std::uint32_t state, int error) noexcept {
  // One writer: the first close()/fail() counts; later ones change nothing.
  if (state_.load(std::memory_order_relaxed) != kOpen) return;
  error_ = error;
  state_.store(state, std::memory_order_release);  // publishes error_; pairs with try_read
  (void)kernel_.notify(handle_, -1);
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
  // The ticket first: a write after this point notifies with a later seq, so a wait on the
  // ticket cannot miss it (and observe's acquire makes earlier writes visible below).
  ticket = pipe_->kernel_.observe(pipe_->handle_).value_or(Ticket{~std::uint64_t{0}});
  const std::uint32_t state = pipe_->state_.load(std::memory_order_acquire);
  const std::size_t size = pipe_->size_.load(std::memory_order_acquire);
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
