// OUTBOX.md's semantics 1-5 and 7-9, each from outside: through the public API, a second
// connection on the same file, and raw SQL where a test must see or set what the API hides.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <herald/outbox.hpp>

#include "outbox/outbox_support.hpp"
#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;
using herald::test::bytes;
using herald::test::raw_sql;
using herald::test::TempDir;
using herald::test::text;

namespace {

/// Quick retries for tests: no waiting seconds for a backoff.
OutboxOptions fast_options() {
  OutboxOptions o;
  o.retry.initial = 1ms;
  o.retry.max = 10ms;
  o.retry.jitter = 0;
  return o;
}

std::unique_ptr<Outbox> open_or_die(const std::string& path, OutboxOptions o = {}) {
  std::string why;
  auto r = Outbox::open(path, std::move(o), &why);
  INFO(why);
  REQUIRE(r);
  return std::move(r).value();
}

std::size_t count_rows(const std::string& path, const std::string& where = "1") {
  return std::stoul(raw_sql(path, "SELECT count(*) FROM herald_outbox WHERE " + where).at(0));
}

/// Makes every queued entry due now (a test does not wait out a backoff).
void make_due(const std::string& path) {
  raw_sql(path, "UPDATE herald_outbox SET due_at_ms = 0 WHERE status = 0");
}

}  // namespace

TEST_SUITE("outbox") {
  TEST_CASE(
      "persist, then notify: a callback sees the entry already committed on another connection") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    std::vector<std::size_t> seen_rows;
    OutboxOptions o;
    o.notify = NotifyMode::callback;
    o.on_enqueue = [&](std::string_view queue, std::string_view id) {
      CHECK(queue == "mail");
      // Another connection: it sees only what is committed.
      seen_rows.push_back(count_rows(path, "id = '" + std::string(id) + "'"));
    };
    auto box = open_or_die(path, std::move(o));
    auto r = box->enqueue("mail", "m1", bytes("hello"));
    REQUIRE(r);
    CHECK(r->inserted);
    CHECK(r->notified);
    REQUIRE(seen_rows.size() == 1);
    CHECK(seen_rows[0] == 1);
  }

  TEST_CASE("persist, then notify: a kernel waiter woken by an enqueue finds the entry committed") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    Kernel kernel;
    OutboxOptions o;
    o.notify = NotifyMode::kernel;
    o.kernel = &kernel;
    auto box = open_or_die(path, std::move(o));
    const Handle h = box->handle("jobs");
    REQUIRE(h);
    CHECK(box->handle("jobs") == h);
    const Ticket seen = kernel.observe(h).value();
    std::size_t rows_when_woken = 0;
    std::thread waiter([&] {
      auto n = kernel.wait_blocking(h, seen, {.timeout = 10s});
      CHECK(n);
      if (!n) return;
      CHECK(n->arg == 1);
      rows_when_woken = count_rows(path);
    });
    auto r = box->enqueue("jobs", "j1", bytes("x"));
    waiter.join();
    REQUIRE(r);
    CHECK(r->notified);
    CHECK(rows_when_woken == 1);
    // A batch notifies once, with the number of entries committed.
    const OutboxItem items[] = {{"j2", bytes("a")}, {"j3", bytes("b")}, {"j1", bytes("dup")}};
    const Ticket before = kernel.observe(h).value();
    auto batch = box->enqueue_batch("jobs", items);
    REQUIRE(batch);
    CHECK(batch->at(0).notified);
    CHECK_FALSE(batch->at(2).inserted);
    CHECK_FALSE(batch->at(2).notified);
    auto n = kernel.wait_blocking(h, before, {.timeout = 0ns});
    REQUIRE(n);
    CHECK(n->seq == before.seq + 1);
    CHECK(n->arg == 2);
  }

  TEST_CASE("a callback that throws after the commit reports notified=false and the entry stays") {
    TempDir dir;
    OutboxOptions o;
    o.notify = NotifyMode::callback;
    o.on_enqueue = [](std::string_view, std::string_view) { throw std::runtime_error("down"); };
    auto box = open_or_die(dir.file("q.db"), std::move(o));
    auto r = box->enqueue("q", "a", bytes("payload"));
    REQUIRE(r);
    CHECK(r->inserted);
    CHECK_FALSE(r->notified);
    auto entries = box->list("q", EntryStatus::queued).value();
    REQUIRE(entries.size() == 1);
    CHECK(text(entries[0].payload) == "payload");
  }

  TEST_CASE("NotifyMode::none notifies nothing and runs nothing; its queue has no handle") {
    TempDir dir;
    Kernel kernel;
    OutboxOptions o;
    o.kernel = &kernel;  // present, but the mode is none: never used
    auto box = open_or_die(dir.file("q.db"), std::move(o));
    auto r = box->enqueue("q", "a", bytes("p"));
    REQUIRE(r);
    CHECK(r->inserted);
    CHECK_FALSE(r->notified);
    CHECK_FALSE(box->handle("q"));
    CHECK(kernel.stats().live_handles == 0);
    CHECK(kernel.stats().notifications == 0);
    CHECK(box->list("q", EntryStatus::queued).value().size() == 1);  // still queued: nothing ran
  }

  TEST_CASE("dedup: an id is enqueued once while it exists, whatever its status") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    int calls = 0;
    OutboxOptions o = fast_options();
    o.notify = NotifyMode::callback;
    o.on_enqueue = [&](std::string_view, std::string_view) { ++calls; };
    auto box = open_or_die(path, std::move(o));
    REQUIRE(box->enqueue("q", "a", bytes("first"))->inserted);
    CHECK(calls == 1);
    auto again = box->enqueue("q", "a", bytes("second"));
    REQUIRE(again);
    CHECK_FALSE(again->inserted);
    CHECK_FALSE(again->notified);
    CHECK(calls == 1);
    CHECK(text(box->list("q", {}).value().at(0).payload) == "first");
    // leased
    auto claimed = box->claim("q", "w", 1).value();
    REQUIRE(claimed.size() == 1);
    CHECK_FALSE(box->enqueue("q", "a", bytes("third"))->inserted);
    // failed
    REQUIRE(box->fail(claimed[0], "w", "boom", true));
    CHECK_FALSE(box->enqueue("q", "a", bytes("fourth"))->inserted);
    CHECK(count_rows(path) == 1);
    CHECK(calls == 1);
    // gone (acked): the id may be used again
    REQUIRE(box->retry("q", "a"));
    auto c2 = box->claim("q", "w", 1).value();
    REQUIRE(c2.size() == 1);
    REQUIRE(box->ack(c2[0], "w"));
    CHECK(box->enqueue("q", "a", bytes("fifth"))->inserted);
    CHECK(calls == 2);
  }

  TEST_CASE(
      "dedup is per queue: id-only calls refuse an ambiguous id and never touch the wrong queue") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    auto box = open_or_die(path, fast_options());
    REQUIRE(box->enqueue("a", "same", bytes("in a"))->inserted);
    REQUIRE(box->enqueue("b", "same", bytes("in b"))->inserted);
    auto ea = box->claim("a", "w", 1).value();
    auto eb = box->claim("b", "w", 1).value();
    REQUIRE(ea.size() == 1);
    REQUIRE(eb.size() == 1);
    CHECK(box->ack("same", "w").error() == Errc::invalid_argument);
    CHECK(box->fail("same", "w", "x").error() == Errc::invalid_argument);
    CHECK(box->extend("same", "w", 1s).error() == Errc::invalid_argument);
    CHECK(count_rows(path, "status = 1") == 2);
    REQUIRE(box->ack(eb[0], "w"));  // the Entry names its queue
    CHECK(count_rows(path, "queue = 'a'") == 1);
    CHECK(count_rows(path, "queue = 'b'") == 0);
    REQUIRE(box->ack("same", "w"));  // unambiguous now
    CHECK(count_rows(path) == 0);
  }

  TEST_CASE(
      "claim: oldest due first, one attempt counted, and a claimed entry is not claimed again") {
    TempDir dir;
    auto box = open_or_die(dir.file("q.db"), fast_options());
    REQUIRE(box->enqueue("q", "late", bytes("3"), 0ms));
    raw_sql(box->path(), "UPDATE herald_outbox SET due_at_ms = 3000 WHERE id = 'late'");
    REQUIRE(box->enqueue("q", "early", bytes("1")));
    raw_sql(box->path(), "UPDATE herald_outbox SET due_at_ms = 1000 WHERE id = 'early'");
    REQUIRE(box->enqueue("q", "middle", bytes("2")));
    raw_sql(box->path(), "UPDATE herald_outbox SET due_at_ms = 2000 WHERE id = 'middle'");
    REQUIRE(box->enqueue("q", "future", bytes("4"), 1h));
    auto got = box->claim("q", "w1", 10, 5s).value();
    REQUIRE(got.size() == 3);
    CHECK(got[0].id == "early");
    CHECK(got[1].id == "middle");
    CHECK(got[2].id == "late");
    for (const Entry& e : got) {
      CHECK(e.attempts == 1);
      CHECK(e.status == EntryStatus::leased);
      CHECK(e.lease_owner == "w1");
      CHECK(e.due_at_ms >= Outbox::now_ms() + 4000);
    }
    CHECK(box->claim("q", "w2", 10).value().empty());  // leased, and the future one is not due
    CHECK(box->claim("other", "w2", 10).value().empty());
    CHECK(box->claim("q", "w2", 0).value().empty());
  }

  TEST_CASE("claim is exclusive across threads, each with its own connection to one file") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    constexpr int kEntries = 300;
    {
      auto box = open_or_die(path);
      std::vector<std::string> ids;
      for (int i = 0; i < kEntries; ++i) ids.push_back("e" + std::to_string(i));
      std::vector<OutboxItem> items;
      for (auto& id : ids) items.push_back({id, bytes("p")});
      REQUIRE(box->enqueue_batch("q", items));
    }
    constexpr unsigned kThreads = 4;
    std::vector<std::vector<std::string>> claimed(kThreads);
    std::atomic<int> errors{0};
    herald::test::run_threads(kThreads, [&](unsigned t) {
      auto box = Outbox::open(path);
      if (!box) {
        ++errors;
        return;
      }
      for (;;) {
        auto got = (*box)->claim("q", "owner" + std::to_string(t), 3);
        if (!got) {
          ++errors;
          return;
        }
        if (got->empty()) return;
        for (const Entry& e : *got) {
          claimed[t].push_back(e.id);
          if (!(*box)->ack(e, "owner" + std::to_string(t))) ++errors;
        }
      }
    });
    CHECK(errors.load() == 0);
    std::multiset<std::string> all;
    for (auto& v : claimed) all.insert(v.begin(), v.end());
    CHECK(all.size() == kEntries);
    CHECK(std::set<std::string>(all.begin(), all.end()).size() == kEntries);
    CHECK(count_rows(path) == 0);
  }

  TEST_CASE(
      "outcome: ack removes; a non-holder's ack, fail and extend get closed and change nothing") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    auto box = open_or_die(path, fast_options());
    REQUIRE(box->enqueue("q", "a", bytes("p")));
    auto e = box->claim("q", "holder", 1).value().at(0);
    const auto before =
        raw_sql(path, "SELECT status || attempts || due_at_ms || lease_owner FROM herald_outbox");
    CHECK(box->ack(e, "intruder").error() == Errc::closed);
    CHECK(box->ack("a", "intruder").error() == Errc::closed);
    CHECK(box->fail(e, "intruder", "x").error() == Errc::closed);
    CHECK(box->extend(e, "intruder", 1h).error() == Errc::closed);
    CHECK(box->release(e, "intruder").error() == Errc::closed);
    CHECK(box->ack("missing", "holder").error() == Errc::closed);
    CHECK(
        raw_sql(path, "SELECT status || attempts || due_at_ms || lease_owner FROM herald_outbox") ==
        before);
    REQUIRE(box->ack(e, "holder"));
    CHECK(count_rows(path) == 0);
    CHECK(box->ack(e, "holder").error() == Errc::closed);  // only once
  }

  TEST_CASE(
      "outcome: fail re-queues with backoff, then moves to failed at max_attempts or when "
      "permanent") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    OutboxOptions o;
    o.retry.initial = 1000ms;
    o.retry.max = 60000ms;
    o.retry.multiplier = 2;
    o.retry.jitter = 0.2;
    o.retry.max_attempts = 3;
    auto box = open_or_die(path, o);
    REQUIRE(box->enqueue("q", "a", bytes("p")));
    for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
      auto e = box->claim("q", "w", 1).value();
      REQUIRE(e.size() == 1);
      CHECK(e[0].attempts == attempt);
      const std::int64_t t0 = Outbox::now_ms();
      REQUIRE(box->fail(e[0], "w", "error " + std::to_string(attempt)));
      const std::int64_t t1 = Outbox::now_ms();
      auto row = box->list("q", {}).value().at(0);
      CHECK(row.last_error == "error " + std::to_string(attempt));
      CHECK(row.lease_owner.empty());
      if (attempt < 3) {
        CHECK(row.status == EntryStatus::queued);
        const auto [lo, hi] = backoff_bounds(o.retry, attempt);
        CHECK(row.due_at_ms >= t0 + lo.count());
        CHECK(row.due_at_ms <= t1 + hi.count());
        CHECK(box->claim("q", "w", 1).value().empty());  // not due yet
        make_due(path);
      } else {
        CHECK(row.status == EntryStatus::failed);
      }
    }
    REQUIRE(box->enqueue("q", "b", bytes("p")));
    auto b = box->claim("q", "w", 1).value().at(0);
    REQUIRE(box->fail(b, "w", "bad payload", true));
    CHECK(box->list("q", EntryStatus::failed).value().size() == 2);
  }

  TEST_CASE(
      "backoff: each interval lies within the jitter bounds, jitter spreads both ways, and the cap "
      "holds") {
    RetryPolicy p;
    p.initial = 100ms;
    p.max = 1000ms;
    p.multiplier = 2;
    p.jitter = 0.25;
    CHECK(backoff_base(p, 1) == 100ms);
    CHECK(backoff_base(p, 2) == 200ms);
    CHECK(backoff_base(p, 4) == 800ms);
    CHECK(backoff_base(p, 5) == 1000ms);
    CHECK(backoff_base(p, 4000000000u) == 1000ms);
    CHECK(backoff_bounds(p, 1) == std::pair{75ms, 125ms});

    TempDir dir;
    const std::string path = dir.file("q.db");
    OutboxOptions o;
    o.retry = p;
    o.retry.max_attempts = 1000;
    auto box = open_or_die(path, o);
    REQUIRE(box->enqueue("q", "a", bytes("p")));
    int below = 0, above = 0;
    for (std::uint32_t attempt = 1; attempt <= 60; ++attempt) {
      auto e = box->claim("q", "w", 1).value();
      REQUIRE(e.size() == 1);
      const std::int64_t t0 = Outbox::now_ms();
      REQUIRE(box->fail(e[0], "w", "x"));
      const std::int64_t t1 = Outbox::now_ms();
      const std::int64_t due = box->list("q", {}).value().at(0).due_at_ms;
      const auto [lo, hi] = backoff_bounds(p, attempt);
      CHECK(due - t0 >= lo.count());
      CHECK(due - t1 <= hi.count());
      const auto base = backoff_base(p, attempt).count();
      below += due - t1 < base ? 1 : 0;
      above += due - t0 > base ? 1 : 0;
      make_due(path);
    }
    CHECK(below > 0);
    CHECK(above > 0);
  }

  TEST_CASE(
      "a lease that expired and was claimed again fences the old holder, even with the same owner "
      "name") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    auto box = open_or_die(path, fast_options());
    REQUIRE(box->enqueue("q", "a", bytes("p")));
    auto first = box->claim("q", "w", 1, 30ms).value().at(0);
    std::this_thread::sleep_for(50ms);
    make_due(path);  // the expiry backoff (1 ms) is over too
    std::this_thread::sleep_for(5ms);
    auto second = box->claim("q", "w", 1, 10s).value();
    REQUIRE(second.size() == 1);
    CHECK(second[0].attempts == 2);
    CHECK(box->ack(first, "w").error() == Errc::closed);
    CHECK(box->fail(first, "w", "late").error() == Errc::closed);
    CHECK(box->extend(first, "w", 1s).error() == Errc::closed);
    CHECK(count_rows(path, "status = 1") == 1);
    REQUIRE(box->ack(second[0], "w"));
  }

  TEST_CASE(
      "leases expire: due again for any claimer after the lease and backoff, failed at "
      "max_attempts") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    OutboxOptions o = fast_options();
    o.retry.max_attempts = 2;
    auto box = open_or_die(path, o);
    auto other = open_or_die(path, o);  // another connection: another process's view
    REQUIRE(box->enqueue("q", "a", bytes("p")));
    REQUIRE(box->claim("q", "crashed", 1, 40ms).value().size() == 1);
    CHECK(other->claim("q", "w2", 1).value().empty());
    std::this_thread::sleep_for(80ms);
    auto again = other->claim("q", "w2", 1, 40ms).value();
    REQUIRE(again.size() == 1);
    CHECK(again[0].attempts == 2);
    std::this_thread::sleep_for(80ms);
    CHECK(other->claim("q", "w3", 1).value().empty());  // expired at max_attempts: failed
    auto failed = box->list("q", EntryStatus::failed).value();
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].last_error.find("expired") != std::string::npos);
  }

  TEST_CASE("release_leases re-queues every lease of one owner at once, due now") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    auto box = open_or_die(path, fast_options());
    for (int i = 0; i < 5; ++i)
      REQUIRE(box->enqueue(i < 3 ? "a" : "b", "e" + std::to_string(i), bytes("p")));
    REQUIRE(box->claim("a", "restarted", 10, 1h).value().size() == 3);
    REQUIRE(box->claim("b", "restarted", 1, 1h).value().size() == 1);
    REQUIRE(box->claim("b", "alive", 1, 1h).value().size() == 1);
    CHECK(box->release_leases("restarted").value() == 4);
    CHECK(box->release_leases("nobody").value() == 0);
    CHECK(box->claim("a", "new", 10).value().size() == 3);
    CHECK(box->claim("b", "new", 10).value().size() == 1);
    CHECK(count_rows(path, "lease_owner = 'alive'") == 1);
  }

  TEST_CASE("release gives back an unstarted claim with its attempt count restored") {
    TempDir dir;
    auto box = open_or_die(dir.file("q.db"), fast_options());
    REQUIRE(box->enqueue("q", "a", bytes("p")));
    auto e = box->claim("q", "w", 1).value().at(0);
    CHECK(e.attempts == 1);
    REQUIRE(box->release(e, "w"));
    auto again = box->claim("q", "w", 1).value();
    REQUIRE(again.size() == 1);
    CHECK(again[0].attempts == 1);
  }

  TEST_CASE("extend moves the lease so the entry is not due to others while its handler runs") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    auto box = open_or_die(path, fast_options());
    REQUIRE(box->enqueue("q", "a", bytes("p")));
    auto e = box->claim("q", "w", 1, 40ms).value().at(0);
    REQUIRE(box->extend(e, "w", 10s));
    std::this_thread::sleep_for(60ms);
    CHECK(box->claim("q", "other", 1).value().empty());
    REQUIRE(box->ack(e, "w"));
  }

  TEST_CASE(
      "failed is a dead-letter state: never claimed until retry, then due at once with fresh "
      "attempts") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    Kernel kernel;
    OutboxOptions o = fast_options();
    o.notify = NotifyMode::kernel;
    o.kernel = &kernel;
    auto box = open_or_die(path, o);
    REQUIRE(box->enqueue("q", "dead", bytes("p")));
    REQUIRE(box->enqueue("q", "live", bytes("p")));
    auto e = box->claim("q", "w", 1).value().at(0);
    REQUIRE(e.id == "dead");
    REQUIRE(box->fail(e, "w", "poison", true));
    raw_sql(path, "UPDATE herald_outbox SET due_at_ms = 0");  // even "due" in the past
    auto rest = box->claim("q", "w", 10).value();
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].id == "live");
    CHECK(box->claim("q", "w", 10).value().empty());
    CHECK(box->retry("q", "live").error() == Errc::closed);  // not failed
    CHECK(box->retry("q", "nope").error() == Errc::invalid_argument);
    CHECK(box->retry("nope").error() == Errc::invalid_argument);
    const Ticket t = kernel.observe(box->handle("q")).value();
    REQUIRE(box->retry("dead"));
    CHECK(kernel.observe(box->handle("q")).value().seq == t.seq + 1);  // a retry wakes dispatchers
    auto back = box->claim("q", "w", 10).value();
    REQUIRE(back.size() == 1);
    CHECK(back[0].id == "dead");
    CHECK(back[0].attempts == 1);
    CHECK(back[0].last_error == "poison");
  }

  TEST_CASE("drain: one pass counts sent, retried and failed, and sends each entry at most once") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    OutboxOptions o;
    o.retry.initial = 0ms;  // re-queued entries are due at once: the pass must still not resend
    o.retry.max = 0ms;
    o.retry.jitter = 0;
    o.retry.max_attempts = 2;
    auto box = open_or_die(path, o);
    for (int i = 0; i < 10; ++i) REQUIRE(box->enqueue("q", "e" + std::to_string(i), bytes("p")));
    // e9 has failed once already: its next failure is its last.
    raw_sql(path, "UPDATE herald_outbox SET attempts = 1 WHERE id = 'e9'");
    std::map<std::string, int> sends;
    auto r = box->drain("q", "drainer", [&](const Entry& e) {
      ++sends[e.id];
      if (e.id == "e7") throw std::runtime_error("smtp 451");
      return e.id != "e8" && e.id != "e9";
    });
    REQUIRE(r);
    CHECK(r->sent == 7);
    CHECK(r->retried == 2);
    CHECK(r->failed == 1);
    CHECK(sends.size() == 10);
    for (const auto& run : sends) CHECK_MESSAGE(run.second == 1, run.first);
    auto queued = box->list("q", EntryStatus::queued).value();
    REQUIRE(queued.size() == 2);
    auto failed = box->list("q", EntryStatus::failed).value();
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].id == "e9");
    std::set<std::string> errors{queued[0].last_error, queued[1].last_error};
    CHECK(errors.count("smtp 451") == 1);
    // The next pass sends the re-queued ones; e7 fails for good now.
    auto second = box->drain("q", "drainer", [](const Entry& e) { return e.id == "e8"; });
    REQUIRE(second);
    CHECK(second->sent == 1);
    CHECK(second->failed == 1);
    CHECK(second->retried == 0);
    CHECK(box->drain("q", "drainer", [](const Entry&) { return true; })->sent == 0);
  }

  TEST_CASE("semantics() tells a quiet queue from a notifying one, as data") {
    TempDir dir;
    Kernel kernel;
    auto quiet = open_or_die(dir.file("a.db"));
    const std::string q = quiet->semantics();
    CHECK(q.find("\"engine\":\"sqlite\"") != std::string::npos);
    CHECK(q.find("\"journal\":\"wal\"") != std::string::npos);
    CHECK(q.find("\"mode\":\"none\"") != std::string::npos);
    CHECK(q.find("\"scope\":\"in-process\"") != std::string::npos);
    CHECK(q.find("\"notifies_on_enqueue\":false") != std::string::npos);
    CHECK(q.find("\"delivery\":\"at-least-once\"") != std::string::npos);
    CHECK(q.find("\"max_attempts\":5") != std::string::npos);
    CHECK(q.find(dir.file("a.db")) != std::string::npos);
    OutboxOptions o;
    o.notify = NotifyMode::kernel;
    o.kernel = &kernel;
    o.durability = Durability::power_loss;
    auto loud = open_or_die(dir.file("b.db"), o);
    const std::string l = loud->semantics();
    CHECK(l.find("\"mode\":\"kernel\"") != std::string::npos);
    CHECK(l.find("\"notifies_on_enqueue\":true") != std::string::npos);
    CHECK(l.find("\"synchronous\":\"full\"") != std::string::npos);
    CHECK(raw_sql(dir.file("b.db"), "PRAGMA journal_mode").at(0) == "wal");
    OutboxOptions c;
    c.notify = NotifyMode::callback;
    c.on_enqueue = [](std::string_view, std::string_view) {};
    CHECK(open_or_die(dir.file("c.db"), c)->semantics().find("\"mode\":\"callback\"") !=
          std::string::npos);
  }

  TEST_CASE("conflicting options are refused at open with invalid_argument") {
    TempDir dir;
    std::string why;
    OutboxOptions k;
    k.notify = NotifyMode::kernel;
    CHECK(Outbox::open(dir.file("a.db"), k, &why).error() == Errc::invalid_argument);
    CHECK(why.find("kernel") != std::string::npos);
    OutboxOptions c;
    c.notify = NotifyMode::callback;
    CHECK(Outbox::open(dir.file("a.db"), c).error() == Errc::invalid_argument);
    OutboxOptions l;
    l.lease = 0ms;
    CHECK(Outbox::open(dir.file("a.db"), l).error() == Errc::invalid_argument);
    OutboxOptions m;
    m.retry.max_attempts = 0;
    CHECK(Outbox::open(dir.file("a.db"), m).error() == Errc::invalid_argument);
    OutboxOptions j;
    j.retry.jitter = 1.5;
    CHECK(Outbox::open(dir.file("a.db"), j).error() == Errc::invalid_argument);
    CHECK_FALSE(std::filesystem::exists(dir.file("a.db")));  // refused before touching the disk
  }

  TEST_CASE("bad input: empty, over-long or NUL-bearing names and negative delays write nothing") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    auto box = open_or_die(path);
    CHECK(box->enqueue("q", "", bytes("p")).error() == Errc::invalid_argument);
    CHECK(box->enqueue("", "a", bytes("p")).error() == Errc::invalid_argument);
    CHECK(box->enqueue("q", std::string(5000, 'x'), bytes("p")).error() == Errc::invalid_argument);
    CHECK(box->enqueue("q", std::string_view("a\0b", 3), bytes("p")).error() ==
          Errc::invalid_argument);
    CHECK(box->enqueue("q", "a", bytes("p"), -1ms).error() == Errc::invalid_argument);
    const OutboxItem items[] = {{"ok", bytes("p")}, {"", bytes("p")}};
    CHECK(box->enqueue_batch("q", items).error() == Errc::invalid_argument);
    CHECK(box->claim("q", "", 1).error() == Errc::invalid_argument);
    CHECK(box->claim("", "w", 1).error() == Errc::invalid_argument);
    CHECK(box->release_leases("").error() == Errc::invalid_argument);
    CHECK(box->retry("").error() == Errc::invalid_argument);
    CHECK(box->stats(std::string(2000, 'q')).error() == Errc::invalid_argument);
    CHECK(count_rows(path) == 0);
    // Hostile but valid: quotes, newlines and binary payloads round-trip.
    const std::string odd = "it's \"odd\"\n\t\\";
    const std::string blob("\0\xff\x01", 3);
    REQUIRE(box->enqueue(odd, odd, bytes(blob))->inserted);
    auto e = box->claim(odd, "w", 1).value().at(0);
    CHECK(e.id == odd);
    CHECK(text(e.payload) == blob);
    CHECK(box->stats(odd).value().find("\\\"odd\\\"") != std::string::npos);
    REQUIRE(box->enqueue("q", "empty-payload", std::span<const std::byte>{})->inserted);
    CHECK(box->claim("q", "w", 1).value().at(0).payload.empty());
  }

  TEST_CASE("bad input: a non-SQLite file is refused clearly and left as it was") {
    TempDir dir;
    const std::string path = dir.file("notes.txt");
    const std::string content(8192, 'z');
    std::ofstream(path) << content;
    std::string why;
    auto r = Outbox::open(path, {}, &why);
    REQUIRE_FALSE(r);
    CHECK(r.error() == Errc::invalid_argument);
    CHECK(why.find("not a herald outbox") != std::string::npos);
    std::ifstream in(path);
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == content);
  }

  TEST_CASE(
      "bad input: another application's database, a newer schema and a corrupt file are refused") {
    TempDir dir;
    const std::string foreign = dir.file("foreign.db");
    raw_sql(foreign, "SELECT 1");  // cannot open: the file does not exist yet
    {
      sqlite3* db = nullptr;
      REQUIRE(sqlite3_open(foreign.c_str(), &db) == SQLITE_OK);
      REQUIRE(sqlite3_exec(db, "CREATE TABLE users(name TEXT); INSERT INTO users VALUES('ann')",
                           nullptr, nullptr, nullptr) == SQLITE_OK);
      sqlite3_close(db);
    }
    std::string why;
    CHECK(Outbox::open(foreign, {}, &why).error() == Errc::invalid_argument);
    CHECK(why.find("other tables") != std::string::npos);
    CHECK(raw_sql(foreign, "SELECT name FROM users") == std::vector<std::string>{"ann"});

    const std::string newer = dir.file("newer.db");
    {
      auto box = open_or_die(newer);
      REQUIRE(box->enqueue("q", "kept", bytes("p")));
    }
    raw_sql(newer, "PRAGMA user_version = 2");
    CHECK(Outbox::open(newer, {}, &why).error() == Errc::invalid_argument);
    CHECK(why.find("newer") != std::string::npos);
    raw_sql(newer, "PRAGMA user_version = 1");
    CHECK(open_or_die(newer)->list("q", {}).value().size() == 1);

    const std::string corrupt = dir.file("corrupt.db");
    {
      auto box = open_or_die(corrupt);
      for (int i = 0; i < 200; ++i)
        REQUIRE(box->enqueue("q", "e" + std::to_string(i), bytes(std::string(500, 'x'))));
    }
    raw_sql(corrupt, "PRAGMA wal_checkpoint(TRUNCATE)");
    {
      std::fstream f(corrupt, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(0);
      f.write("garbage garbage garbage!", 24);  // the header's magic string
    }
    auto r = Outbox::open(corrupt, {}, &why);
    CHECK(r.error() == Errc::invalid_argument);
  }

  TEST_CASE("bad input: a missing directory and a directory as the path are refused clearly") {
    TempDir dir;
    std::string why;
    auto r = Outbox::open(dir.file("no/such/dir/q.db"), {}, &why);
    REQUIRE_FALSE(r);
    CHECK(r.error() == Errc::invalid_argument);
    CHECK(why.find("cannot open") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.file("no")));
    CHECK(Outbox::open(dir.path().string()).error() == Errc::invalid_argument);
    CHECK(Outbox::open("").error() == Errc::invalid_argument);
  }

  TEST_CASE("bad input: a read-only file is refused at open") {
    if (::geteuid() == 0) {
      // root writes through file modes; a file under /proc is read-only for everyone.
      CHECK(Outbox::open("/proc/version").error() == Errc::invalid_argument);
      return;
    }
    TempDir dir;
    const std::string path = dir.file("ro.db");
    open_or_die(path).reset();
    std::filesystem::permissions(path, std::filesystem::perms::owner_read);
    std::string why;
    CHECK(Outbox::open(path, {}, &why).error() == Errc::invalid_argument);
  }

  TEST_CASE("a full disk (max_pages) gives Errc::full, and everything committed before it stays") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    OutboxOptions o;
    o.max_pages = 12;
    auto box = open_or_die(path, o);
    const std::string payload(1000, 'x');
    std::vector<std::string> committed;
    Errc last{};
    for (int i = 0; i < 1000; ++i) {
      const std::string id = "e" + std::to_string(i);
      auto r = box->enqueue("q", id, bytes(payload));
      if (!r) {
        last = r.error();
        break;
      }
      committed.push_back(id);
    }
    CHECK(last == Errc::full);
    CHECK(box->last_error().find("full") != std::string::npos);
    REQUIRE_FALSE(committed.empty());
    // A batch that does not fit changes nothing.
    std::vector<std::string> more;
    for (int i = 0; i < 20; ++i) more.push_back("b" + std::to_string(i));
    std::vector<OutboxItem> items;
    for (auto& id : more) items.push_back({id, bytes(payload)});
    CHECK(box->enqueue_batch("q", items).error() == Errc::full);
    // Claims and acks still work (they need no new pages), and free room again.
    auto e = box->claim("q", "w", 1).value();
    REQUIRE(e.size() == 1);
    REQUIRE(box->ack(e[0], "w"));
    box.reset();
    auto reopened = open_or_die(path);
    auto rows = reopened->list("q", {}, 10000).value();
    CHECK(rows.size() == committed.size() - 1);
    CHECK(raw_sql(path, "PRAGMA integrity_check").at(0) == "ok");
  }

  TEST_CASE("stats and list report counts by status and the oldest due time") {
    TempDir dir;
    auto box = open_or_die(dir.file("q.db"), fast_options());
    for (int i = 0; i < 4; ++i) REQUIRE(box->enqueue("q", "e" + std::to_string(i), bytes("p")));
    REQUIRE(box->enqueue("r", "x", bytes("p")));
    auto e = box->claim("q", "w", 2).value();
    REQUIRE(box->fail(e[0], "w", "bad", true));
    const std::string s = box->stats("q").value();
    CHECK(s.find("\"queue\":\"q\"") != std::string::npos);
    CHECK(s.find("\"queued\":2") != std::string::npos);
    CHECK(s.find("\"leased\":1") != std::string::npos);
    CHECK(s.find("\"failed\":1") != std::string::npos);
    CHECK(s.find("\"oldest_due_ms\":null") == std::string::npos);
    const std::string all = box->stats("").value();
    CHECK(all.find("\"queue\":\"r\"") != std::string::npos);
    CHECK(all.find("\"total\":{\"queued\":3,\"leased\":1,\"failed\":1") != std::string::npos);
    CHECK(box->stats("empty").value().find("\"queued\":0") != std::string::npos);
    CHECK(box->list("", {}).value().size() == 5);
    CHECK(box->list("q", EntryStatus::leased).value().size() == 1);
    CHECK(box->list("q", {}, 2).value().size() == 2);
    CHECK(box->next_due_ms("q").value().has_value());
    CHECK_FALSE(box->next_due_ms("empty").value().has_value());
  }

  TEST_CASE("the schema is versioned and marked: user_version 1, application_id HRLD") {
    TempDir dir;
    const std::string path = dir.file("q.db");
    open_or_die(path).reset();
    CHECK(raw_sql(path, "PRAGMA user_version").at(0) == "1");
    CHECK(raw_sql(path, "PRAGMA application_id").at(0) == std::to_string(0x48524c44));
    CHECK(raw_sql(path, "PRAGMA journal_mode").at(0) == "wal");
    open_or_die(path).reset();  // reopening an existing outbox
  }
}
