#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "herald/kernel.hpp"
#include "herald/task.hpp"

namespace herald {

struct MemPipeOptions {
  std::size_t capacity = 0;  ///< total bytes the pipe may hold; 0 = unbounded
  std::string_view debug_hint = "mempipe";
};

/// What one read produced: bytes copied, or EOF, or an error (an errno value: the writer's, after
/// all data written before it, or the reader's own, at once).
struct ReadResult {
  std::size_t bytes = 0;
  bool eof = false;
  int error = 0;
  explicit operator bool() const noexcept { return bytes != 0; }
};

/// A broadcast in-memory byte pipe built only on the public kernel API: one writer appends, any
/// number of readers each read the identical byte sequence from the start at their own pace.
///
/// Writer (one thread at a time): write() never blocks and succeeds with no readers; it fails
/// with Errc::full past the capacity (nothing is written) and Errc::closed after close()/fail().
/// Readers: read() (coroutine) and read_blocking() wait while the writer is open and nothing new
/// is there; EOF comes only after all data; a writer error only after all data written before it,
/// then on every read; a reader's own fail() is reported at once. Reading takes no lock when data
/// is available: bytes live in append-only chunks and a published size.
///
/// Memory ordering: the writer copies bytes, publishes the new size (release), then notifies the
/// pipe's handle; a reader that observes the size (acquire) sees the bytes. Waits use the
/// observe -> check -> wait pattern, so no wakeup is lost.
///
/// Lifetime: readers must not outlive their pipe, nor the pipe its kernel. Destroying the pipe
/// unregisters its handle; waiting readers then see EOF.
class MemPipe {
 public:
  class Reader;

  /// Registers the pipe's handle; Errc from register_handle (limit_exceeded, out_of_memory).
  static Result<std::unique_ptr<MemPipe>> create(Kernel& kernel,
                                                 const MemPipeOptions& options = {});
  ~MemPipe();
  MemPipe(const MemPipe&) = delete;
  MemPipe& operator=(const MemPipe&) = delete;

  // ---- writer ----
  Result<void> write(std::span<const std::byte> data);
  Result<void> write(std::string_view text) { return write(std::as_bytes(std::span(text))); }
  /// EOF for every reader once it has read everything.
  void close() noexcept;
  /// The writer failed with `error` (an errno value, nonzero): readers see it after all data.
  void fail(int error) noexcept;

  // ---- readers ----
  /// A new reader positioned at the start of the data.
  Reader reader() noexcept;

  Handle handle() const noexcept { return handle_; }
  /// Bytes written so far (a snapshot).
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

 private:
  struct Chunk;
  static constexpr std::size_t kChunkSize = 16 * 1024;

  MemPipe(Kernel& kernel, Handle handle, const MemPipeOptions& options) noexcept;
  void finish(std::uint32_t state, int error) noexcept;
  /// Publishes `size` with the seq of the notify that announces it, then notifies.
  void publish(std::size_t size) noexcept;
  /// Notifies the pipe's handle and records the seq it got.
  void notify_once(std::int64_t arg) noexcept;
  /// A size and the seq of the notify that announces it, read as one pair (seqlock).
  struct Published {
    std::size_t size;
    std::uint64_t seq;
  };
  Published published() const noexcept;

  Kernel& kernel_;
  Handle handle_;
  std::size_t capacity_;
  Chunk* first_ = nullptr;
  Chunk* last_ = nullptr;      // writer only
  std::size_t last_used_ = 0;  // bytes used in last_ (writer only)
  std::atomic<std::size_t> size_{0};
  // The pair a reader takes its ticket from: it consumes up to `size_` and waits for a seq above
  // `size_seq_`, so every notify that wakes it brings bytes it has not read (or the end).
  std::atomic<std::uint64_t> pair_version_{0};  // odd while the writer changes the pair
  std::atomic<std::uint64_t> size_seq_{0};
  std::uint64_t notified_ = 0;  // writer only: the seq of its last notify
  // kOpen, kClosed or kFailed; written once, before the final notify.
  std::atomic<std::uint32_t> state_{0};
  int error_ = 0;  // published by state_
};

/// One reader's position in a MemPipe. Used by one thread (or coroutine) at a time.
class MemPipe::Reader {
 public:
  /// `co_await reader.read(buffer)` -> ReadResult. Completes without suspending when data (or the
  /// end) is there; otherwise suspends on the pipe's handle and resumes on the current executor.
  /// Not a Task, so a loop of reads that find data at once never nests frames.
  class ReadAwaitable {
   public:
    ReadAwaitable(const ReadAwaitable&) = delete;
    ReadAwaitable& operator=(const ReadAwaitable&) = delete;
    bool await_ready() noexcept { return reader_->try_read(buffer_, result_, ticket_); }
    bool await_suspend(std::coroutine_handle<> awaiting) noexcept;
    ReadResult await_resume() noexcept;

   private:
    friend class Reader;
    struct Wait {  // a WaitAwaitable built in place (it cannot move)
      WaitAwaitable awaitable;
      Wait(Kernel& k, Handle h, Ticket t) noexcept : awaitable(k.wait(h, t)) {}
    };
    ReadAwaitable(Reader* reader, std::span<std::byte> buffer) noexcept
        : reader_(reader), buffer_(buffer) {}
    bool settle() noexcept;  // after the wait completed: true once result_ is final

    Reader* reader_;
    std::span<std::byte> buffer_;
    ReadResult result_{};
    Ticket ticket_{};
    std::optional<Wait> wait_;
  };

  /// Copies up to buffer.size() bytes; waits (co_await) while the writer is open and nothing new
  /// is there.
  ReadAwaitable read(std::span<std::byte> buffer) noexcept { return ReadAwaitable(this, buffer); }
  /// The same, blocking the calling thread.
  ReadResult read_blocking(std::span<std::byte> buffer);
  /// This reader's own error: every later read reports it at once.
  void fail(int error) noexcept { own_error_ = error; }
  /// Bytes this reader has consumed.
  std::size_t position() const noexcept { return position_; }

 private:
  friend class MemPipe;
  explicit Reader(MemPipe* pipe) noexcept : pipe_(pipe) {}
  /// Takes what is there now; false when the caller must wait (after `ticket`).
  bool try_read(std::span<std::byte> buffer, ReadResult& out, Ticket& ticket) noexcept;

  MemPipe* pipe_;
  Chunk* chunk_ = nullptr;
  std::size_t offset_ = 0;  // in chunk_
  std::size_t position_ = 0;
  int own_error_ = 0;
};

}  // namespace herald
