#pragma once

#include <atomic>
#include <cstdint>

#include "config.hpp"

namespace herald::detail {

/// One thread's announcement in the process-wide epoch domain.
struct alignas(kCacheLine) EpochRecord {
  /// 0 while the owner is outside every read-side section, else the epoch it entered in.
  std::atomic<std::uint64_t> state{0};
  std::atomic<bool> in_use{false};
  std::uint32_t depth = 0;  // owner thread only: read sections nest
};

/// The global epoch. Starts at 1 so that a nonzero record state always means "inside".
inline std::atomic<std::uint64_t> g_epoch{1};
/// The calling thread's record; constant-initialised, so reading it needs no TLS guard.
inline thread_local EpochRecord* t_epoch_record = nullptr;

/// Claims a record for the calling thread (once per thread, released at thread exit).
EpochRecord* claim_epoch_record() noexcept;

/// Epoch-based reclamation for the data plane: notify() runs inside a ReadGuard; the control
/// plane unpublishes a core, ring or list, calls synchronize_epoch(), then frees it.
///
/// Memory ordering: the guard announces with a seq_cst exchange and the data plane loads published
/// pointers seq_cst. synchronize_epoch() bumps the epoch (seq_cst) after the unpublishing store and
/// then reads every record (seq_cst). In the single total order S either a reader's announcement
/// precedes the writer's scan of its record (the writer then waits until it leaves, and its exit
/// store (release) happens-before the free), or it follows it, and then the reader's pointer load
/// follows the unpublishing store in S and cannot see the old pointer.
///
/// Cost to a reader: one exchange and one store on its own cache line; no shared write.
class ReadGuard {
 public:
  ReadGuard() noexcept {
    EpochRecord* r = t_epoch_record;
    if (r == nullptr) [[unlikely]]
      r = claim_epoch_record();
    record_ = r;
    if (r->depth++ == 0) {
      // acquire: a reader that reads a writer's new epoch is skipped by that writer's scan, so it
      // must see the writer's unpublishing store: the acquire pairs with the writer's fetch_add
      // (seq_cst, so release), which follows the unpublishing store in its thread; the store then
      // happens-before our pointer loads. A stale (smaller) epoch only makes writers wait longer.
      // seq_cst exchange: the announcement must precede this thread's later loads of published
      // pointers in S (see the class comment).
      r->state.exchange(g_epoch.load(std::memory_order_acquire), std::memory_order_seq_cst);
    }
  }
  ~ReadGuard() {
    if (--record_->depth == 0) {
      // release: every access made inside the section happens-before the writer's free, which
      // follows its acquire (seq_cst) load of this 0.
      record_->state.store(0, std::memory_order_release);
    }
  }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;

 private:
  EpochRecord* record_;
};

/// Blocks (spinning, then yielding) until every read-side section that could have seen a pointer
/// unpublished before this call has ended. Control plane only; must not be called inside a
/// ReadGuard. Bounded by the longest read section (a notify: no blocking, no client code).
void synchronize_epoch() noexcept;

}  // namespace herald::detail
