#include "reclaim/epoch.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cassert>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>

#include "wait/spin.hpp"

namespace herald::detail {
namespace {

constexpr std::size_t kRecordsPerBlock = kFirstRecords;

struct RecordBlock {
  EpochRecord records[kRecordsPerBlock];
  std::atomic<RecordBlock*> next{nullptr};
};

// The first 256 threads never allocate; later ones share blocks allocated once and never freed.
RecordBlock g_first_block;
// One past the highest record of g_first_block ever claimed: synchronize_epoch() scans only
// those, so a process with a few threads pays for a few records, not 256.
std::atomic<std::size_t> g_first_block_used{0};

struct RecordReleaser {
  ~RecordReleaser() {
    if (EpochRecord* r = t_epoch_record) {
      assert(!r->inside() && "thread exits inside a read section");
      t_epoch_record = nullptr;
      // release: the next owner's accesses follow this thread's last exit store.
      r->in_use.store(false, std::memory_order_release);
    }
  }
};

EpochRecord* try_claim(RecordBlock& block) noexcept {
  for (std::size_t i = 0; i < kRecordsPerBlock; ++i) {
    EpochRecord& r = block.records[i];
    if (r.in_use.load(std::memory_order_relaxed)) continue;
    bool expected = false;
    // acquire: pairs with the release in ~RecordReleaser of the previous owner.
    if (r.in_use.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      r.index = &block == &g_first_block ? static_cast<std::uint32_t>(i) : kFirstRecords;
      if (&block == &g_first_block) {
        // seq_cst: precedes, in S, every announcement this thread will make in the record. A
        // synchronize_epoch() whose scan bound misses this update read it before, in S, so it
        // also precedes the announcement and the pointer loads after it, which therefore see
        // the unpublishing store (see ReadGuard).
        std::size_t used = g_first_block_used.load(std::memory_order_relaxed);
        while (used < i + 1 &&
               !g_first_block_used.compare_exchange_weak(used, i + 1, std::memory_order_seq_cst,
                                                         std::memory_order_relaxed)) {
        }
      }
      return &r;
    }
  }
  return nullptr;
}

}  // namespace

EpochRecord* claim_epoch_record() noexcept {
  static thread_local RecordReleaser releaser;  // registers the release at thread exit
  (void)releaser;
  RecordBlock* block = &g_first_block;
  for (;;) {
    if (EpochRecord* r = try_claim(*block)) {
      t_epoch_record = r;
      return r;
    }
    // acquire: pairs with the release CAS that linked the block, so its records are constructed.
    RecordBlock* next = block->next.load(std::memory_order_acquire);
    if (next == nullptr) {
      auto* fresh = new (std::nothrow) RecordBlock;
      if (fresh == nullptr) {
        std::this_thread::yield();  // retry: some thread may exit and free a record
        continue;
      }
      if (!block->next.compare_exchange_strong(next, fresh, std::memory_order_acq_rel)) {
        delete fresh;
      } else {
        next = fresh;
      }
    }
    block = next;
  }
}

#if defined(__SANITIZE_THREAD__)
#define HERALD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HERALD_TSAN 1
#endif
#endif

namespace {

long membarrier(int cmd) noexcept { return syscall(SYS_membarrier, cmd, 0, 0); }

bool choose_asymmetric() noexcept {
#ifdef HERALD_TSAN
  return false;  // ThreadSanitizer does not model the barrier membarrier forces on readers
#else
  if (const char* v = std::getenv("HERALD_EPOCH_SYMMETRIC");
      v != nullptr && *v != '\0' && !(v[0] == '0' && v[1] == '\0'))
    return false;
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
#endif
}

/// Every section whose record holds an odd value now: waits until the value changes.
void scan_and_wait() noexcept {
  const std::size_t first_used = g_first_block_used.load(std::memory_order_seq_cst);
  for (RecordBlock* block = &g_first_block; block != nullptr;
       block = block->next.load(std::memory_order_acquire)) {
    const std::size_t scan = block == &g_first_block ? first_used : kRecordsPerBlock;
    for (std::size_t i = 0; i < scan; ++i) {
      EpochRecord& r = block->records[i];
      const std::uint64_t seen = r.state.load(std::memory_order_seq_cst);
      if ((seen & 1) == 0) continue;  // outside every section
      // Inside the section `seen` marks: wait until it ends (any later value: its exit store, or
      // a later section, which began after this scan's load and needs no wait).
      // Backing off between loads: each load takes the line from its owner, who must take it
      // back to leave the section.
      for (unsigned round = 0; r.state.load(std::memory_order_seq_cst) == seen; ++round)
        spin_backoff(round);
    }
  }
}

}  // namespace

std::uint32_t first_records_used() noexcept {
  // acquire: a lane scan that sees a record's claim sees what its thread wrote before (the
  // claim's seq_cst CAS is a release).
  return static_cast<std::uint32_t>(g_first_block_used.load(std::memory_order_acquire));
}

void init_epoch_domain() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    // relaxed: every kernel is constructed after this call returns, and its construction
    // happens-before every read section run on it (see epoch_asymmetric()).
    g_epoch_asymmetric.store(choose_asymmetric(), std::memory_order_relaxed);
  });
}

void synchronize_epoch() noexcept {
  assert((t_epoch_record == nullptr || !t_epoch_record->inside()) &&
         "synchronize_epoch inside a read section would wait for itself");
  if (epoch_asymmetric()) {
    // Registered in init_epoch_domain(), so it cannot fail with EPERM; any other failure would
    // leave readers unfenced, and there is no safe way on.
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) std::abort();
  }
  scan_and_wait();
}

void wait_for_sections() noexcept {
  assert((t_epoch_record == nullptr || !t_epoch_record->inside()) &&
         "wait_for_sections inside a read section would wait for itself");
  scan_and_wait();
}

}  // namespace herald::detail
