// Semantic 6 (crash safety) and semantic 3 across processes: children (this binary in a child
// mode) enqueue, claim and ack on a shared file and are SIGKILLed at random instants; after each
// kill the file is reopened and checked against what the child reported as committed.
//
// A child reports an operation with one write(2) only after it returned, so every reported
// operation is committed. The kill can fall between a commit and its report, so the checks allow
// exactly the child's next operation to be there or not.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <herald/outbox.hpp>

#include "outbox/outbox_support.hpp"
#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;
using herald::test::Child;
using herald::test::raw_sql;
using herald::test::report_line;
using herald::test::TempDir;

namespace {

OutboxOptions crash_options() {
  OutboxOptions o;
  o.retry.initial = 1ms;
  o.retry.max = 5ms;
  o.retry.jitter = 0.2;
  o.retry.max_attempts = 1000000;  // nothing may end up failed here
  o.lease = 200ms;
  return o;
}

}  // namespace

namespace herald::test {

// --crash-child DB OWNER BASE: forever: enqueue a batch of two (BASE+k, BASE+k+1), claim one,
// ack it (every third is failed instead, then claimed again later). Reports "R" once open, then
// "E id", "C id attempts", "A id", "F id" after each call returns.
int crash_child(int argc, char** argv) {
  if (argc < 5) return 2;
  const std::string path = argv[2], owner = argv[3];
  const long base = std::stol(argv[4]);
  auto box = Outbox::open(path, crash_options());
  if (!box) return 3;
  report_line("R");
  Outbox& o = **box;
  for (long k = base;; k += 2) {
    const std::string a = "e" + std::to_string(k), b = "e" + std::to_string(k + 1);
    const std::string pa = "payload-" + a, pb = "payload-" + b;
    const OutboxItem items[] = {{a, bytes(pa)}, {b, bytes(pb)}};
    auto r = o.enqueue_batch("crash", items);
    if (!r) return 4;
    report_line("E " + a);
    report_line("E " + b);
    auto claimed = o.claim("crash", owner, 1);
    if (!claimed) return 5;
    for (const Entry& e : *claimed) {
      report_line("C " + e.id + " " + std::to_string(e.attempts));
      if ((k / 2) % 3 == 2) {
        if (!o.fail(e, owner, "transient")) return 6;
        report_line("F " + e.id);
      } else {
        if (!o.ack(e, owner)) return 7;
        report_line("A " + e.id);
      }
    }
  }
}

// --claim-child DB OWNER: claims (one at a time) and acks until nothing is due; reports
// "C id" per claim.
int claim_child(int argc, char** argv) {
  if (argc < 4) return 2;
  const std::string path = argv[2], owner = argv[3];
  OutboxOptions o;
  o.lease = std::chrono::minutes(10);
  auto box = Outbox::open(path, o);
  if (!box) return 3;
  for (;;) {
    auto got = (*box)->claim("shared", owner, 1);
    if (!got) return 4;
    if (got->empty()) return 0;
    for (const Entry& e : *got) {
      report_line("C " + e.id);
      if (!(*box)->ack(e, owner)) return 5;
    }
  }
}

}  // namespace herald::test

TEST_SUITE("outbox crash safety") {
  TEST_CASE("claim is exclusive across processes sharing one file") {
    TempDir dir;
    const std::string path = dir.file("shared.db");
    constexpr int kEntries = 400;
    {
      auto box = Outbox::open(path).value();
      std::vector<std::string> ids;
      for (int i = 0; i < kEntries; ++i) ids.push_back("s" + std::to_string(i));
      std::vector<OutboxItem> items;
      for (auto& id : ids) items.push_back({id, herald::test::bytes("p")});
      REQUIRE(box->enqueue_batch("shared", items));
    }
    std::vector<std::unique_ptr<Child>> children;
    for (int c = 0; c < 3; ++c) {
      children.push_back(std::make_unique<Child>(
          std::vector<std::string>{"--claim-child", path, "proc" + std::to_string(c)}));
      REQUIRE(children.back()->started());
    }
    std::multiset<std::string> claimed;
    std::vector<std::size_t> per_child;
    for (auto& child : children) {
      std::size_t n = 0;
      std::string line;
      while (child->read_line(line)) {
        if (line.rfind("C ", 0) == 0) {
          claimed.insert(line.substr(2));
          ++n;
        }
      }
      per_child.push_back(n);
      const int status = child->wait();
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
    }
    CHECK(claimed.size() == kEntries);
    CHECK(std::set<std::string>(claimed.begin(), claimed.end()).size() == kEntries);
    MESSAGE("claims per process: " << per_child[0] << ", " << per_child[1] << ", " << per_child[2]);
    CHECK(raw_sql(path, "SELECT count(*) FROM herald_outbox").at(0) == "0");
  }

  TEST_CASE(
      "SIGKILL at random instants, 100 rounds: nothing committed is lost, duplicated or stuck") {
    TempDir dir;
    const std::string path = dir.file("crash.db");
    const std::uint64_t seed = herald::test::test_seed();
    MESSAGE("HERALD_SEED=" << seed);
    std::mt19937_64 rng(seed);
    constexpr int kRounds = 100;
    std::set<std::string> expected;  // ids that must be in the file now
    std::set<std::string> acked;     // ids acknowledged (removed) by some child
    std::uint64_t total_ops = 0;
    for (int round = 0; round < kRounds; ++round) {
      const std::string owner = "child" + std::to_string(round);
      const long base = static_cast<long>(round) * 1000000;
      Child child({"--crash-child", path, owner, std::to_string(base)});
      REQUIRE(child.started());
      std::string line;
      REQUIRE(child.read_line(line));
      REQUIRE(line == "R");
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 15000));
      child.kill();
      const int status = child.wait();
      REQUIRE(WIFSIGNALED(status));

      // What the child reported: each line is an operation that returned (committed).
      std::set<std::string> enq, ack;
      std::string claimed_open;  // the last claim not yet acked or failed
      long last_enqueued = base - 1;
      while (child.read_line(line)) {
        ++total_ops;
        const std::string id = line.substr(2, line.find(' ', 2) - 2);
        switch (line[0]) {
          case 'E':
            enq.insert(id);
            last_enqueued = std::stol(id.substr(1));
            break;
          case 'C':
            claimed_open = id;
            break;
          case 'A':
            ack.insert(id);
            claimed_open.clear();
            break;
          case 'F':
            claimed_open.clear();
            break;
          default:
            FAIL("unexpected line " << line);
        }
      }
      // The next batch may have committed without its report (never just half of it).
      // Batches are pairs (base + 2j, base + 2j + 1) committed as one: a reported id vouches for
      // its partner, and the pair after the last reported one may be there (whole) or not.
      long next_pair = base;
      if (last_enqueued >= base) {
        const long pair = base + (last_enqueued - base) / 2 * 2;
        enq.insert("e" + std::to_string(pair));
        enq.insert("e" + std::to_string(pair + 1));
        next_pair = pair + 2;
      }
      const std::string next_a = "e" + std::to_string(next_pair);
      const std::string next_b = "e" + std::to_string(next_pair + 1);
      for (const std::string& id : enq) expected.insert(id);
      for (const std::string& id : ack) {
        expected.erase(id);
        acked.insert(id);
      }

      // Reopen (a restart) and compare.
      OutboxOptions o = crash_options();
      auto box = Outbox::open(path, o);
      REQUIRE(box);
      REQUIRE(raw_sql(path, "PRAGMA integrity_check").at(0) == "ok");
      auto rows = (*box)->list("crash", {}, 100000000).value();
      std::set<std::string> present;
      std::size_t duplicates = 0, bad_payloads = 0, failed = 0, bad_leases = 0;
      const std::int64_t lease_horizon = Outbox::now_ms() + o.lease.count();
      for (const Entry& e : rows) {
        duplicates += present.insert(e.id).second ? 0 : 1;
        bad_payloads += herald::test::text(e.payload) == "payload-" + e.id ? 0 : 1;
        failed += e.status == EntryStatus::failed ? 1 : 0;
        // A leased entry belongs to a child and is due again within one lease.
        bad_leases += e.status == EntryStatus::leased &&
                              (e.lease_owner.rfind("child", 0) != 0 || e.due_at_ms > lease_horizon)
                          ? 1
                          : 0;
      }
      CHECK(duplicates == 0);
      CHECK(bad_payloads == 0);
      CHECK(failed == 0);
      CHECK(bad_leases == 0);
      const bool next_batch = present.count(next_a) != 0;
      CHECK(present.count(next_b) == (next_batch ? 1u : 0u));  // a batch is all or nothing
      if (next_batch) {
        expected.insert(next_a);
        expected.insert(next_b);
      }
      // An ack that committed without its report removed claimed_open.
      if (!claimed_open.empty() && present.count(claimed_open) == 0 &&
          expected.count(claimed_open) != 0) {
        expected.erase(claimed_open);
        acked.insert(claimed_open);
      }
      std::size_t resurrected = 0;
      for (const std::string& id : present) resurrected += acked.count(id);
      CHECK(resurrected == 0);  // an acknowledged entry never comes back
      CHECK(present == expected);
      if (present != expected) break;

      // A known owner restarted: its leases are due again at once (in odd rounds; in even
      // rounds they are left to expire, and the next child's claims reap them).
      if (round % 2 == 1) {
        auto released = (*box)->release_leases(owner);
        REQUIRE(released);
        CHECK(*released <= 1);
      }
    }
    MESSAGE(kRounds << " rounds, " << total_ops << " reported operations, " << expected.size()
                    << " entries left");
    // Nothing stuck: every entry left is claimed, at once or after its lease, exactly once.
    OutboxOptions o = crash_options();
    auto box = Outbox::open(path, o).value();
    for (int r = 0; r < kRounds; ++r) (void)box->release_leases("child" + std::to_string(r));
    std::multiset<std::string> drained;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (drained.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
      auto got = box->claim("crash", "final", 1000).value();
      for (const Entry& e : got) {
        drained.insert(e.id);
        REQUIRE(box->ack(e, "final"));
      }
      if (got.empty()) std::this_thread::sleep_for(10ms);
    }
    CHECK(drained.size() == expected.size());
    CHECK(std::set<std::string>(drained.begin(), drained.end()) == expected);
    CHECK(raw_sql(path, "SELECT count(*) FROM herald_outbox").at(0) == "0");
  }
}
