#pragma once

#include <atomic>
#include <cstdint>

#include "config.hpp"

namespace herald::detail {

/// One thread's announcement in the process-wide reclamation domain.
struct alignas(kCacheLine) EpochRecord {
  /// Written by the owner only: odd while it is inside a read-side section, even outside; every
  /// entry and every exit adds one, so a writer that saw an odd value knows the section it saw
  /// has ended once the value changes.
  std::atomic<std::uint64_t> state{0};
  std::atomic<bool> in_use{false};
  std::uint32_t depth = 0;  // owner thread only: read sections nest
};

/// The calling thread's record; constant-initialised, so reading it needs no TLS guard.
inline thread_local EpochRecord* t_epoch_record = nullptr;

/// Claims a record for the calling thread (once per thread, released at thread exit).
EpochRecord* claim_epoch_record() noexcept;

/// Grace-period reclamation for the data plane: notify() runs inside a ReadGuard; the control
/// plane unpublishes a core, ring or list, calls synchronize_epoch(), then frees it.
///
/// There is no global epoch: a reader announces itself in its own record with a counter, and a
/// writer waits for each section it sees in progress to end (PROTOCOLS.md §1). Neither writes a
/// line the other writes, so grace periods of many writers share nothing but the readers' lines.
///
/// Memory ordering: the guard announces with a seq_cst exchange and the data plane loads published
/// pointers seq_cst; synchronize_epoch() follows the unpublishing store (seq_cst) with seq_cst
/// loads of every record. In the single total order S either a reader's announcement precedes the
/// writer's load of its record (the writer then waits until that section's exit store, a release
/// it reads with acquire, so the section happens-before the free), or it follows it, and then the
/// reader's pointer load follows the unpublishing store in S and cannot see the old pointer.
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
      // relaxed load: only this thread writes the record. seq_cst exchange: the announcement
      // must precede this thread's later loads of published pointers in S (see the class comment).
      r->state.exchange(r->state.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
    }
  }
  ~ReadGuard() {
    if (--record_->depth == 0) {
      // release: every access made inside the section happens-before the writer's free, which
      // follows its acquire (seq_cst) load of this even value.
      record_->state.store(record_->state.load(std::memory_order_relaxed) + 1,
                           std::memory_order_release);
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
