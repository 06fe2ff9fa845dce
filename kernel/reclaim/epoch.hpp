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
  /// Owner thread only, set when it claims the record: its place among the first kFirstRecords
  /// (each kernel's latest lanes are indexed by it), or kFirstRecords for records beyond them.
  std::uint32_t index = 0;

  /// Owner thread only: whether it is inside a read section now.
  bool inside() const noexcept { return (state.load(std::memory_order_relaxed) & 1) != 0; }
};

/// Records the first threads claim; their indices name a latest lane in every kernel.
inline constexpr std::uint32_t kFirstRecords = 256;

/// One past the highest index of a first record ever claimed (a bound for scans of lanes).
std::uint32_t first_records_used() noexcept;

/// The calling thread's record; constant-initialised, so reading it needs no TLS guard.
/// initial-exec: every data-plane call reads it first, and in a shared library (libherald.so,
/// the Python extension) the default model would call __tls_get_addr for it on every notify.
/// A library loaded with dlopen takes these 8 bytes from glibc's static TLS surplus, which is
/// reserved for such variables.
[[gnu::tls_model("initial-exec")]] inline thread_local EpochRecord* t_epoch_record = nullptr;

/// Claims a record for the calling thread (once per thread, released at thread exit).
EpochRecord* claim_epoch_record() noexcept;

/// Whether read sections announce themselves with a plain store (true) or a seq_cst exchange
/// (false). Set once, by the first Kernel's construction (init_epoch_domain()), before any read
/// section of any kernel can begin; never changes after.
inline std::atomic<bool> g_epoch_asymmetric{false};

/// Chooses the announcement for the process: asymmetric when membarrier's private expedited
/// command registers (and the build is not under ThreadSanitizer, which cannot see the barrier
/// it forces), and HERALD_EPOCH_SYMMETRIC is unset or 0. Idempotent and thread-safe.
void init_epoch_domain() noexcept;

/// True when read sections announce with a plain store (see ReadGuard).
inline bool epoch_asymmetric() noexcept {
  // relaxed: written once, before the kernel whose section reads it was constructed (its
  // construction happens-before every use of it).
  return g_epoch_asymmetric.load(std::memory_order_relaxed);
}

/// A read section entered and left by hand: what ReadGuard does in its constructor and
/// destructor, for notify(), whose unusual paths end in calls that leave the section themselves,
/// so that its common path needs few registers (see notify_into()). One word, passed in a
/// register.
struct ReadSection {
  /// The record whose section this began, which leave() ends; nullptr when nested in another.
  EpochRecord* began;

  /// `r` is the calling thread's record, claimed already (t_epoch_record != nullptr).
  [[gnu::always_inline]] static ReadSection enter(EpochRecord* r) noexcept {
    // relaxed load: only this thread writes the record. Odd: an enclosing section (a guard
    // further up this thread's stack, or the code a signal handler interrupted) announced it
    // already and ends it. Sections nest without a depth count: a section only ends what it
    // began. (A signal handler that runs between this load and the store below begins and ends
    // its own section; the store then writes its odd value again, which a scan that read it
    // takes as still in progress: it waits longer, never less.)
    const std::uint64_t s = r->state.load(std::memory_order_relaxed);
    if ((s & 1) != 0) [[unlikely]]
      return ReadSection{nullptr};
    if (epoch_asymmetric()) [[likely]] {
      // release: a scan that reads it also sees the exit store before it (see ReadGuard); the
      // writer's membarrier provides the store-load order.
      r->state.store(s + 1, std::memory_order_release);
    } else {
      // seq_cst exchange: the announcement precedes this thread's later loads of published
      // pointers in S (see ReadGuard).
      r->state.exchange(s + 1, std::memory_order_seq_cst);
    }
    return ReadSection{r};
  }
  [[gnu::always_inline]] void leave() const noexcept {
    if (began != nullptr) [[likely]] {
      // release: every access made inside the section happens-before the writer's free, which
      // follows its acquire (seq_cst) load of this even value.
      began->state.store(began->state.load(std::memory_order_relaxed) + 1,
                         std::memory_order_release);
    }
  }
};

/// Grace-period reclamation for the data plane: notify() and the waits run inside a ReadGuard;
/// the control plane unpublishes a handle's core, and frees it after a grace period
/// (synchronize_epoch()), in batches (PROTOCOLS.md §1).
///
/// There is no global epoch: a reader announces itself in its own record with a counter, and a
/// writer waits for each section it sees in progress to end. Neither writes a line the other
/// writes, so grace periods of many writers share nothing but the readers' lines.
///
/// Memory ordering. Symmetric mode: the guard announces with a seq_cst exchange and the data plane
/// loads published pointers seq_cst; synchronize_epoch() follows the unpublishing store (seq_cst)
/// with seq_cst loads of every record. In the single total order S either a reader's announcement
/// precedes the writer's load of its record (the writer then waits until that section's exit
/// store, a release it reads with acquire, so the section happens-before the free), or it follows
/// it, and then the reader's pointer load follows the unpublishing store in S and cannot see the
/// old pointer.
///
/// Asymmetric mode: the guard announces with a release store, a plain store on x86, and the
/// writer forces the fence the reader omits: synchronize_epoch() calls
/// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) before its scan. Every thread of the process that
/// runs during the call executes a full barrier inside it (the others pass a context switch), so
/// a reader's announcement made before that barrier is visible to the scan, and a reader's pointer
/// load after it sees the unpublishing store, which preceded the call. The announcement is a
/// release so that a scan that reads it (acquire) also synchronizes with the exit store before it.
///
/// wait_for_sections() is the scan alone, without the membarrier: it waits only for sections
/// whose announcement is already ordered before the caller by something else. The control plane
/// uses it where the reader's own RMW on the handle's seq word (multi-producer notify) or its
/// fence (single-producer notify) provides that order (PROTOCOLS.md §4).
///
/// Cost to a reader: one store (asymmetric) or one exchange and one store (symmetric) on its own
/// cache line; no shared write.
class ReadGuard {
 public:
  [[gnu::always_inline]] ReadGuard() noexcept : section_(ReadSection::enter(claimed_record())) {}
  [[gnu::always_inline]] ~ReadGuard() { section_.leave(); }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;

 private:
  [[gnu::always_inline]] static EpochRecord* claimed_record() noexcept {
    EpochRecord* r = t_epoch_record;
    if (r == nullptr) [[unlikely]]
      r = claim_epoch_record();
    return r;
  }

  ReadSection section_;
};

/// Waits for every read section visible as in progress to end: the scan of synchronize_epoch()
/// without its membarrier. Control plane only, never inside a ReadGuard.
void wait_for_sections() noexcept;

/// Blocks (spinning, then yielding) until every read-side section that could have seen a pointer
/// unpublished before this call has ended. Control plane only; must not be called inside a
/// ReadGuard. Bounded by the longest read section (a notify: no blocking, no client code).
void synchronize_epoch() noexcept;

}  // namespace herald::detail
