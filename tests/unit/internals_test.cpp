// White-box tests of pieces whose edge cases the public API cannot reach in reasonable time.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "core/latest_cells.hpp"
#include "core/latest_lanes.hpp"
#include "memory/memory_budget.hpp"
#include "reclaim/epoch.hpp"
#include "registry/handle_table.hpp"
#include "subscription/subscription_record.hpp"
#include "test_support.hpp"

using namespace herald;
using namespace herald::detail;

TEST_SUITE("internals") {
  TEST_CASE("a slot whose generation would wrap is retired, never reused") {
    HandleTable table(2);
    std::uint32_t index = 0;
    std::uint32_t generation = 0;
    REQUIRE(table.reserve(index, generation));
    CHECK(generation == 1);
    table.set_next_generation(index, 0xFFFFFFFFu);
    table.unreserve(index);
    REQUIRE(table.reserve(index, generation));
    CHECK(generation == 0xFFFFFFFFu);
    const std::uint32_t wrapped = index;
    table.release(wrapped);
    CHECK(table.retired_slots() == 1);
    REQUIRE(table.reserve(index, generation));
    CHECK(index != wrapped);
    CHECK_FALSE(table.reserve(index, generation));  // the retired slot is gone for good
  }

  TEST_CASE("a table hands out exactly its capacity, consecutive slots on different lines") {
    for (const std::uint32_t capacity : {1u, 7u, 8u, 13u, 64u, 1000u}) {
      CAPTURE(capacity);
      HandleTable table(capacity);
      std::set<std::uint32_t> seen;
      std::uint32_t previous = 0;
      for (std::uint32_t n = 0; n < capacity; ++n) {
        std::uint32_t index = 0;
        std::uint32_t generation = 0;
        REQUIRE(table.reserve(index, generation));
        CHECK(seen.insert(index).second);
        // 8-byte core pointers, 8 per line: from 64 slots on, neighbours in time are never
        // neighbours in space.
        if (n > 0 && capacity >= 64) CHECK(index / 8 != previous / 8);
        previous = index;
      }
      std::uint32_t index = 0;
      std::uint32_t generation = 0;
      CHECK_FALSE(table.reserve(index, generation));
      CHECK(table.used_slots() == capacity);
    }
  }

  TEST_CASE("latest cells keep the newest complete notification") {
    LatestCells cells;
    Notification n{};
    CHECK_FALSE(cells.latest_after(0, n));
    for (std::uint64_t s = 1; s <= 10; ++s)
      REQUIRE(cells.publish_multi(s, static_cast<std::int64_t>(s) * 2));
    REQUIRE(cells.latest_after(0, n));
    CHECK(n.seq == 10);
    CHECK(n.arg == 20);
    CHECK_FALSE(cells.latest_after(10, n));
    // An older notifier finishing late never hides a newer one.
    CHECK(cells.publish_multi(7, 0));
    REQUIRE(cells.latest_after(0, n));
    CHECK(n.seq == 10);
    cells.publish_single(11, 5);
    REQUIRE(cells.latest_after(10, n));
    CHECK(n == Notification{11, 5});
  }

  TEST_CASE("a latest lane holds one handle's newest notification until cleared or retargeted") {
    LatestLane lane;
    std::uint64_t h = 0;
    Notification n{};
    CHECK_FALSE(lane.read(h, n));  // nothing yet
    CHECK(lane.owner_empty());
    lane.retarget(77);
    CHECK(lane.owner_handle() == 77);
    CHECK_FALSE(lane.read(h, n));  // a handle, but no notification
    lane.publish(5, -3);
    REQUIRE(lane.read(h, n));
    CHECK(h == 77);
    CHECK(n == Notification{5, -3});
    lane.publish(9, 4);
    REQUIRE(lane.read(h, n));
    CHECK(n == Notification{9, 4});
    CHECK(lane.owner_latest() == Notification{9, 4});
    lane.clear();  // keeps the handle, holds nothing
    CHECK(lane.owner_handle() == 77);
    CHECK(lane.owner_empty());
    CHECK_FALSE(lane.read(h, n));
    lane.retarget(78);
    lane.publish(2, 8);  // a smaller seq than the last handle's: the version tells them apart
    REQUIRE(lane.read(h, n));
    CHECK(h == 78);
    CHECK(n == Notification{2, 8});
  }

  TEST_CASE("the memory budget refuses what would pass the limit and returns to zero") {
    MemoryBudget budget(1000);
    void* a = budget.allocate(600);
    REQUIRE(a != nullptr);
    CHECK(budget.allocate(500) == nullptr);
    void* b = budget.allocate(400, 64);
    REQUIRE(b != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(b) % 64 == 0);
    CHECK(budget.used() == 1000);
    CHECK(budget.allocate(1) == nullptr);
    budget.deallocate(a, 600);
    budget.deallocate(b, 400);
    CHECK(budget.used() == 0);
    CHECK(budget.allocate(std::size_t(-1)) == nullptr);
  }

  TEST_CASE("a sharded memory budget is exact when quiet and refuses only what cannot fit") {
    constexpr std::size_t kLimit = std::size_t{4} << 20;  // large enough for per-thread credit
    MemoryBudget budget(kLimit);
    // Another thread takes credit into its shard and keeps one small block.
    void* theirs = nullptr;
    std::thread([&] { theirs = budget.allocate(100); }).join();
    REQUIRE(theirs != nullptr);
    CHECK(budget.used() == 100);
    // Everything else still fits: the other shard's unused credit is taken back, not refused.
    void* mine = budget.allocate(kLimit - 100);
    REQUIRE(mine != nullptr);
    CHECK(budget.used() == kLimit);
    CHECK(budget.allocate(1) == nullptr);
    budget.deallocate(mine, kLimit - 100);
    CHECK(budget.used() == 100);
    // Many threads allocating and freeing at once: exact again once they stop.
    std::vector<std::thread> threads;
    std::atomic<std::uint64_t> refused{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        std::vector<std::pair<void*, std::size_t>> held;
        for (int i = 0; i < 20000; ++i) {
          const std::size_t bytes = 16 + static_cast<std::size_t>(i % 97) * 24;
          if (void* p = budget.allocate(bytes)) {
            held.emplace_back(p, bytes);
          } else {
            refused.fetch_add(1);
          }
          if (held.size() > 64 || i % 3 == 0) {
            if (!held.empty()) {
              budget.deallocate(held.back().first, held.back().second);
              held.pop_back();
            }
          }
        }
        for (auto [p, bytes] : held) budget.deallocate(p, bytes);
      });
    }
    for (auto& t : threads) t.join();
    CHECK(refused.load() == 0);
    CHECK(budget.used() == 100);
    budget.deallocate(theirs, 100);
    CHECK(budget.used() == 0);
  }

  TEST_CASE("a subscription record keeps its parker and ring lines apart and counts every byte") {
    MemoryBudget budget(1 << 20);
    for (const Producers producers : {Producers::single, Producers::multi}) {
      SubscriptionRecord* record =
          SubscriptionRecord::create(budget, 8, Overflow::drop_newest, producers, "x");
      REQUIRE(record != nullptr);
      CHECK(reinterpret_cast<std::uintptr_t>(record) % kCacheLine == 0);
      CHECK(reinterpret_cast<std::uintptr_t>(&record->parker) % kCacheLine == 0);
      CHECK(reinterpret_cast<std::uintptr_t>(&record->ring) % kCacheLine == 0);
      CHECK(sizeof(SubscriptionRing) % kCacheLine == 0);
      CHECK(record->hint() == "x");
      CHECK(budget.used() == SubscriptionRecord::footprint(8, producers) + 1);
      SubscriptionRecord::destroy(budget, record);
      CHECK(budget.used() == 0);
    }
    // A single-producer slot is the item alone: four to a cache line; a multi-producer slot is
    // padded to two per line, so none straddles a line boundary.
    CHECK(sizeof(SubscriptionRing::SeqSlot) == 16);
    CHECK(sizeof(SubscriptionRing::Slot) == 32);
  }

  TEST_CASE("large records start on different cache colours and give back every byte") {
    MemoryBudget budget(std::size_t{64} << 20);
    std::vector<SubscriptionRecord*> records;
    std::set<std::uintptr_t> colours;  // which L1 set (of 64 per 4 KiB way) each header maps to
    for (int i = 0; i < 16; ++i) {
      records.push_back(
          SubscriptionRecord::create(budget, 4096, Overflow::drop_newest, Producers::single, "h"));
      REQUIRE(records.back() != nullptr);
      CHECK(reinterpret_cast<std::uintptr_t>(records.back()) % kCacheLine == 0);
      CHECK(records.back()->hint() == "h");
      colours.insert(reinterpret_cast<std::uintptr_t>(records.back()) % 4096 / kCacheLine);
    }
    CHECK(colours.size() >= 8);
    for (SubscriptionRecord* r : records) SubscriptionRecord::destroy(budget, r);
    CHECK(budget.used() == 0);
  }

  TEST_CASE("read sections nest: only the section that began one ends it") {
    {
      const ReadGuard outer;
      const EpochRecord& record = *t_epoch_record;  // claimed by the guard
      REQUIRE(record.inside());
      const std::uint64_t announced = record.state.load();
      {
        const ReadGuard inner;  // nested: neither announces nor ends anything
        CHECK(record.state.load() == announced);
        const ReadSection section = ReadSection::enter(t_epoch_record);
        CHECK(section.began == nullptr);
        section.leave();
        CHECK(record.state.load() == announced);
      }
      CHECK(record.inside());  // the inner guard's end did not end the outer section
      CHECK(record.state.load() == announced);
    }
    REQUIRE(t_epoch_record != nullptr);
    CHECK_FALSE(t_epoch_record->inside());
    const std::uint64_t before = t_epoch_record->state.load();
    const ReadSection section = ReadSection::enter(t_epoch_record);
    CHECK(section.began == t_epoch_record);
    CHECK(t_epoch_record->inside());
    section.leave();
    CHECK_FALSE(t_epoch_record->inside());
    CHECK(t_epoch_record->state.load() == before + 2);
  }
}
