#include "reclaim/epoch.hpp"

#include <cassert>
#include <cstddef>
#include <new>
#include <thread>

namespace herald::detail {
namespace {

constexpr std::size_t kRecordsPerBlock = 256;

struct RecordBlock {
  EpochRecord records[kRecordsPerBlock];
  std::atomic<RecordBlock*> next{nullptr};
};

// The first 256 threads never allocate; later ones share blocks allocated once and never freed.
RecordBlock g_first_block;

struct RecordReleaser {
  ~RecordReleaser() {
    if (EpochRecord* r = t_epoch_record) {
      assert(r->depth == 0 && "thread exits inside a read section");
      t_epoch_record = nullptr;
      // release: the next owner's accesses follow this thread's last exit store.
      r->in_use.store(false, std::memory_order_release);
    }
  }
};

EpochRecord* try_claim(RecordBlock& block) noexcept {
  for (EpochRecord& r : block.records) {
    if (r.in_use.load(std::memory_order_relaxed)) continue;
    bool expected = false;
    // acquire: pairs with the release in ~RecordReleaser of the previous owner.
    if (r.in_use.compare_exchange_strong(expected, true, std::memory_order_acquire)) return &r;
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

void synchronize_epoch() noexcept {
  assert((t_epoch_record == nullptr || t_epoch_record->depth == 0) &&
         "synchronize_epoch inside a read section would wait for itself");
  const std::uint64_t epoch = g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
  for (RecordBlock* block = &g_first_block; block != nullptr;
       block = block->next.load(std::memory_order_acquire)) {
    for (EpochRecord& r : block->records) {
      for (unsigned spins = 0;; ++spins) {
        const std::uint64_t s = r.state.load(std::memory_order_seq_cst);
        if (s == 0 || s >= epoch) break;
        if (spins < 64) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
}

}  // namespace herald::detail
