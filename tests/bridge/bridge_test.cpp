// The bridge against a real redis-server: semantic 1 (cross-process wake, exact seq and arg),
// semantic 2 (nothing on notify's path while Redis is stopped), semantic 5 (bad input), and the
// connection lifecycle (unreachable, refused AUTH, a server that appears later).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <herald/herald.hpp>
#include <herald/redis_bridge.hpp>

#include "bridge/bridge_support.hpp"

using namespace herald;
using namespace std::chrono_literals;
using herald::test::Child;
using herald::test::eventually;
using herald::test::json_number;
using herald::test::json_true;
using herald::test::RawClient;
using herald::test::RedisServer;

namespace {

using Clock = std::chrono::steady_clock;

/// Options for tests: short timeouts and backoff so that faults are noticed in milliseconds.
RedisOptions fast_options(const RedisServer& server) {
  RedisOptions o;
  o.url = server.url();
  o.prefix = "herald-test";
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  o.connect_timeout = 500ms;
  o.command_timeout = 300ms;
  o.health_interval = 100ms;
  return o;
}

/// The argument of the k-th notification of the cross-process test (extremes included).
std::int64_t child_arg(std::int64_t k) {
  if (k == 1) return std::numeric_limits<std::int64_t>::max();
  if (k == 2) return -1;
  if (k == 3) return std::numeric_limits<std::int64_t>::min() + 1;
  return k * 1000003 - 7;
}

}  // namespace

namespace herald::test {

// --notify-child URL CHANNEL N: "O origin" once connected, then notifies N times and reports
// "N seq arg" after each notify; "D" once every one is published (or "X stats" on a timeout).
int notify_child(int argc, char** argv) {
  if (argc < 5) return 2;
  Kernel kernel;
  RedisOptions o;
  o.url = argv[2];
  o.prefix = "herald-test";
  auto bridge = RedisBridge::connect(kernel, o);
  if (!bridge) return 3;
  const Handle h = kernel.register_handle().value();
  if (!(*bridge)->export_handle(h, argv[3])) return 4;
  report_line("O " + (*bridge)->origin());
  const long n = std::stol(argv[4]);
  for (long k = 1; k <= n; ++k) {
    auto r = kernel.notify(h, child_arg(k));
    if (!r) return 5;
    report_line("N " + std::to_string(r->seq) + " " + std::to_string(child_arg(k)));
  }
  const bool all =
      eventually([&] { return json_number((*bridge)->stats(), "published") == n; }, 5000ms);
  report_line(all ? "D" : "X " + (*bridge)->stats());
  return all ? 0 : 6;
}

}  // namespace herald::test

TEST_SUITE("redis bridge") {
  TEST_CASE("a notify in another process wakes a waiter here, with seq and arg exact") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    const Handle h = bridge->import_channel("xproc").value();
    auto sub = kernel.subscribe(h, {.capacity = 1024}).value();
    RawClient raw(server.port());  // what is on the wire, decoded by herald's own parser
    REQUIRE(raw.ok());
    REQUIRE(raw.subscribe("herald-test:xproc"));

    // A thread parked on the imported handle before the other process exists.
    std::atomic<bool> woken{false};
    Result<Notification> first = Errc::empty;
    std::thread waiter([&] {
      first = kernel.wait_blocking(h, Ticket{0}, {.timeout = 10s});
      woken = true;
    });

    constexpr int kCount = 50;
    Child child({"--notify-child", server.url(), "xproc", std::to_string(kCount)});
    REQUIRE(child.started());
    std::string line;
    REQUIRE(child.read_line(line, 10s));
    REQUIRE(line.rfind("O ", 0) == 0);
    const std::string child_origin = line.substr(2);
    std::vector<std::pair<std::uint64_t, std::int64_t>> sent;
    while (child.read_line(line, 10s) && line.rfind("N ", 0) == 0) {
      std::uint64_t seq = 0;
      long long arg = 0;
      REQUIRE(std::sscanf(line.c_str(), "N %lu %lld", &seq, &arg) == 2);
      sent.emplace_back(seq, arg);
    }
    CHECK(line == "D");
    CHECK(child.exit_code(5s) == 0);
    REQUIRE(sent.size() == kCount);

    waiter.join();
    REQUIRE(woken.load());
    REQUIRE(first.has_value());
    CHECK(first->seq >= 1);

    // Every notification arrives on the imported handle, in order, with its arg; the imported
    // handle's own seq counts them the same way (one local notify per message).
    for (int k = 0; k < kCount; ++k) {
      auto n = sub.recv_blocking({.timeout = 5s});
      REQUIRE(n.has_value());
      CHECK(n->arg == sent[k].second);
      CHECK(n->seq == sent[k].first);
    }
    // On the wire: the exporter's seq and arg exactly, and its origin.
    for (int k = 0; k < kCount; ++k) {
      const std::string payload = raw.next_message();
      auto m = parse_bridge_message(payload);
      REQUIRE_MESSAGE(m.has_value(), payload);
      CHECK(m->seq == sent[k].first);
      CHECK(m->arg == sent[k].second);
      CHECK(m->origin == child_origin);
    }
    const std::string stats = bridge->stats();
    CHECK(json_number(stats, "received") == kCount);
    CHECK(json_number(stats, "malformed") == 0);
  }

  TEST_CASE("notify costs the same while redis-server is stopped; the export drops and counts") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    RedisOptions o = fast_options(server);
    o.export_capacity = 64;
    auto bridge = RedisBridge::connect(kernel, o).value();
    const Handle h = kernel.register_handle().value();
    REQUIRE(bridge->export_handle(h, "cost"));
    constexpr int kPerPhase = 20000;

    // Per-call times, so that the medians compare the push itself, not the machine's noise.
    auto phase = [&](std::vector<std::int64_t>& ns) {
      ns.clear();
      for (int i = 0; i < kPerPhase; ++i) {
        const auto t0 = Clock::now();
        auto r = kernel.notify(h, i);
        const auto t1 = Clock::now();
        REQUIRE(r.has_value());
        ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      }
      std::sort(ns.begin(), ns.end());
    };
    auto accounted = [&] {
      const std::string s = bridge->stats();
      return json_number(s, "published") + json_number(s, "export_drops");
    };
    std::vector<std::int64_t> up, stopped;
    phase(up);
    REQUIRE(eventually([&] { return accounted() == kPerPhase; }, 10s));
    const std::size_t memory_up = kernel.stats().memory_used;
    const auto drops_up = json_number(bridge->stats(), "export_drops");

    server.pause();  // SIGSTOP: the socket stays open, nothing answers
    std::this_thread::sleep_for(50ms);
    phase(stopped);
    const std::size_t memory_stopped = kernel.stats().memory_used;
    const auto drops_stopped = json_number(bridge->stats(), "export_drops");
    server.resume();

    const auto p50_up = up[up.size() / 2], p50_stopped = stopped[stopped.size() / 2];
    const auto p99_up = up[up.size() * 99 / 100], p99_stopped = stopped[stopped.size() * 99 / 100];
    MESSAGE("notify p50 " << p50_up << " ns up, " << p50_stopped << " ns stopped; p99 " << p99_up
                          << " ns up, " << p99_stopped << " ns stopped; export drops " << drops_up
                          << " up, " << drops_stopped << " after the stop");
    CHECK(p50_stopped <= 3 * p50_up + 1000);
    CHECK(p99_stopped <= 3 * p99_up + 50000);  // slack for preemption on a loaded machine
    CHECK(drops_stopped > drops_up);           // the bounded subscription dropped and counted
    CHECK(memory_stopped == memory_up);        // nothing grew while Redis was stopped
    // Every notification is accounted for: published, or counted as an export drop.
    CHECK(eventually([&] { return accounted() == 2 * kPerPhase; }, 10s));
    CHECK(eventually([&] { return bridge->connected(); }, 10s));
  }

  TEST_CASE("an export published in order reaches a raw subscriber as herald's JSON") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    RawClient raw(server.port());
    REQUIRE(raw.subscribe("herald-test:jobs"));
    const Handle h = kernel.register_handle().value();
    REQUIRE(bridge->export_handle(h, "jobs"));
    for (int i = 1; i <= 10; ++i) REQUIRE(kernel.notify(h, i * 11));
    for (int i = 1; i <= 10; ++i) {
      auto m = parse_bridge_message(raw.next_message());
      REQUIRE(m.has_value());
      CHECK(m->seq == static_cast<std::uint64_t>(i));
      CHECK(m->arg == i * 11);
      CHECK(m->origin == bridge->origin());
    }
    // The export ends with its handle.
    REQUIRE(kernel.unregister_handle(h));
    CHECK(eventually([&] { return json_number(bridge->stats(), "exports") == 0; }, 5s));
  }

  TEST_CASE("kill and restart redis-server on the same port: reconnect and kResync") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    const Handle h = bridge->import_channel("fault").value();
    auto sub = kernel.subscribe(h).value();
    RawClient before(server.port());
    REQUIRE(before.publish("herald-test:fault", R"({"seq":1,"arg":5,"origin":"raw"})") == 1);
    REQUIRE(sub.recv_blocking({.timeout = 5s})->arg == 5);

    server.kill_now();
    REQUIRE(eventually(
        [&] {
          const std::string st = bridge->stats();
          return !json_true(st, "publisher_connected") && !json_true(st, "subscriber_connected");
        },
        5s));
    CHECK(bridge->publish("fault", 1).error() == Errc::closed);  // counted, not queued
    REQUIRE(server.start());
    auto n = sub.recv_blocking({.timeout = 5s});
    REQUIRE(n.has_value());
    CHECK(n->arg == RedisBridge::kResync);
    REQUIRE(eventually([&] { return bridge->connected(); }, 5s));
    const std::string stats = bridge->stats();
    CHECK(json_number(stats, "reconnects") >= 2);  // both links
    CHECK(json_number(stats, "resyncs") >= 1);
    // The channel is subscribed again: a message after the resync arrives.
    RawClient after(server.port());
    REQUIRE(after.publish("herald-test:fault", R"({"seq":2,"arg":6,"origin":"raw"})") == 1);
    n = sub.recv_blocking({.timeout = 5s});
    REQUIRE(n.has_value());
    CHECK(n->arg == 6);
  }

  TEST_CASE("a bridge started before its server connects when it appears, then resyncs") {
    const int port = herald::test::free_loopback_port();
    Kernel kernel;
    RedisOptions o;
    o.url = "redis://127.0.0.1:" + std::to_string(port);
    o.reconnect_min = 10ms;
    o.reconnect_max = 40ms;
    o.command_timeout = 300ms;
    o.require_initial_connection = false;
    auto bridge = RedisBridge::connect(kernel, o).value();
    const auto t0 = Clock::now();
    const Handle h = bridge->import_channel("late").value();
    CHECK(Clock::now() - t0 < 250ms);  // the link is down: no wait for a confirmation
    CHECK(bridge->publish("late", 1).error() == Errc::closed);
    CHECK(eventually([&] { return json_number(bridge->stats(), "connect_failures") >= 4; }, 5s));
    CHECK_FALSE(json_true(bridge->stats(), "connected"));

    // Now a server appears on that port.
    auto sub = kernel.subscribe(h).value();
    RedisServer server({}, port);
    HERALD_REDIS_OR_SKIP(server);
    auto n = sub.recv_blocking({.timeout = 5s});
    REQUIRE(n.has_value());
    CHECK(n->arg == RedisBridge::kResync);
    CHECK(eventually([&] { return bridge->connected(); }, 5s));
  }

  TEST_CASE("bad URLs are invalid_argument, with a reason") {
    Kernel kernel;
    for (const char* url : {"",
                            "http://127.0.0.1",
                            "redis://",
                            "redis://:6379",
                            "redis://h:0",
                            "redis://h:65536",
                            "redis://h:abc",
                            "redis://h:",
                            "redis://h/x",
                            "redis://h/",
                            "redis://h:6379/-1",
                            "redis://h h",
                            "redis://user@h",
                            "redis://h:6379/1/2",
                            "redis://:%zz@h",
                            "redis://[::1",
                            "redis://h\n",
                            "redis://h:6379/99999999999",
                            "redis://:@h",
                            "unix:///tmp/redis.sock",
                            "redis://h:6379?db=1"}) {
      CAPTURE(url);
      CHECK(parse_redis_url(url).error() == Errc::invalid_argument);
      RedisOptions o;
      o.url = url;
      std::string why;
      auto b = RedisBridge::connect(kernel, o, &why);
      REQUIRE_FALSE(b.has_value());
      CHECK(b.error() == Errc::invalid_argument);
      CHECK(why.find("URL") != std::string::npos);
    }
    auto e = parse_redis_url("redis://user:p%40ss@cache.example.org:6380/3").value();
    CHECK(e.host == "cache.example.org");
    CHECK(e.port == 6380);
    CHECK(e.user == "user");
    CHECK(e.password == "p@ss");
    CHECK(e.db == 3);
    e = parse_redis_url("redis://:secret@10.0.0.7").value();
    CHECK(e.host == "10.0.0.7");
    CHECK(e.port == 6379);
    CHECK(e.user.empty());
    CHECK(e.password == "secret");
    CHECK(e.db == 0);
    e = parse_redis_url("redis://[::1]:7000/1").value();
    CHECK(e.host == "::1");
    CHECK(e.port == 7000);
    CHECK(e.db == 1);
  }

  TEST_CASE("an unreachable port is closed at once; bad options are invalid_argument") {
    Kernel kernel;
    RedisOptions o;
    o.url = "redis://127.0.0.1:" + std::to_string(herald::test::free_loopback_port());
    std::string why;
    const auto t0 = Clock::now();
    auto b = RedisBridge::connect(kernel, o, &why);
    REQUIRE_FALSE(b.has_value());
    CHECK(b.error() == Errc::closed);
    CHECK(why.find("refused") != std::string::npos);
    CHECK(Clock::now() - t0 < 2s);

    for (auto change : std::vector<void (*)(RedisOptions&)>{
             [](RedisOptions& x) { x.export_capacity = 0; },
             [](RedisOptions& x) { x.prefix = "two words"; },
             [](RedisOptions& x) { x.prefix = ""; },
             [](RedisOptions& x) { x.reconnect_min = std::chrono::milliseconds(0); },
             [](RedisOptions& x) { x.reconnect_max = std::chrono::milliseconds(1); }}) {
      RedisOptions bad;
      change(bad);
      CHECK(RedisBridge::connect(kernel, bad).error() == Errc::invalid_argument);
    }
  }

  TEST_CASE("a server that refuses AUTH is invalid_argument; the right password connects") {
    RedisServer server({"--requirepass", "s3cret"});
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    RedisOptions o;
    o.url = server.url();
    std::string why;
    CHECK(RedisBridge::connect(kernel, o, &why).error() == Errc::invalid_argument);
    CHECK(why.find("NOAUTH") != std::string::npos);
    o.url = "redis://:wrong@127.0.0.1:" + std::to_string(server.port());
    CHECK(RedisBridge::connect(kernel, o).error() == Errc::invalid_argument);
    o.url = "redis://:s3cret@127.0.0.1:" + std::to_string(server.port()) + "/2";
    auto bridge = RedisBridge::connect(kernel, o).value();
    CHECK(bridge->connected());
  }

  TEST_CASE("messages that are not herald's JSON are counted and dropped; the channel goes on") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    const Handle h = bridge->import_channel("hostile").value();
    auto sub = kernel.subscribe(h).value();
    RawClient raw(server.port());
    const std::string nul_bytes("{\"seq\":1,\0\"arg\":2}", 19);
    const std::vector<std::string> hostile = {
        "hello",
        "",
        "{}",
        R"({"seq":1})",
        R"({"arg":1})",
        R"({"seq":-1,"arg":1})",
        R"({"seq":1,"arg":99999999999999999999})",
        R"({"seq":1,"arg":"7"})",
        R"({"seq":1,"arg":1,"seq":2})",
        R"({"seq":1,"arg":1} trailing)",
        R"({"seq":1,"arg":1,"nested":{"a":1}})",
        R"([1,2,3])",
        std::string(5000, '{'),
        nul_bytes,
        "{\"seq\":1,\"arg\":1,\"origin\":\"\\u00zz\"}",
    };
    for (const auto& p : hostile) REQUIRE(raw.publish("herald-test:hostile", p) == 1);
    REQUIRE(raw.publish("herald-test:hostile",
                        R"( { "origin" : "x\"y" , "extra": true, "seq" : 9, "arg" : -42 } )") == 1);
    auto n = sub.recv_blocking({.timeout = 5s});
    REQUIRE(n.has_value());
    CHECK(n->arg == -42);
    CHECK(sub.try_recv().error() == Errc::empty);
    const std::string stats = bridge->stats();
    CHECK(json_number(stats, "malformed") == static_cast<long long>(hostile.size()));
    CHECK(json_number(stats, "received") == 1);
  }

  TEST_CASE("channel names with spaces and other bad names are invalid_argument") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    const Handle h = kernel.register_handle().value();
    for (const std::string& bad :
         {std::string("two words"), std::string(""), std::string("tab\tx"), std::string("glob*"),
          std::string("q?"), std::string("[x]"), std::string(300, 'c'), std::string("nl\n"),
          std::string("nul\0x", 5), std::string("\xc3\xa9t\xc3\xa9")}) {
      CAPTURE(bad);
      CHECK_FALSE(valid_channel_name(bad));
      CHECK(bridge->import_channel(bad).error() == Errc::invalid_argument);
      CHECK(bridge->export_handle(h, bad).error() == Errc::invalid_argument);
      CHECK(bridge->publish(bad, 1).error() == Errc::invalid_argument);
    }
    CHECK(valid_channel_name("task:job-1/step_2.a"));
    CHECK(bridge->export_handle(Handle::from_raw(0xdeadbeef), "ok").error() ==
          Errc::unknown_handle);
    CHECK(bridge->release_channel(h).error() == Errc::unknown_handle);
    const Handle imported = bridge->import_channel("ok").value();
    CHECK(bridge->release_channel(imported));
    CHECK(kernel.observe(imported).error() == Errc::unknown_handle);
    CHECK(json_number(bridge->stats(), "imported_channels") == 0);
  }

  TEST_CASE("the message format round-trips, origin escaping included") {
    BridgeMessage m{42, -7, "host \"a\"\\b\n"};
    auto back = parse_bridge_message(format_bridge_message(m));
    REQUIRE(back.has_value());
    CHECK(back->seq == 42);
    CHECK(back->arg == -7);
    CHECK(back->origin == m.origin);
    BridgeMessage extreme{std::numeric_limits<std::uint64_t>::max(),
                          std::numeric_limits<std::int64_t>::min(), ""};
    back = parse_bridge_message(format_bridge_message(extreme));
    REQUIRE(back.has_value());
    CHECK(back->seq == extreme.seq);
    CHECK(back->arg == extreme.arg);
  }

  TEST_CASE("two imports of one channel are both notified; releasing one keeps the other") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    const Handle a = bridge->import_channel("shared").value();
    const Handle b = bridge->import_channel("shared").value();
    auto sa = kernel.subscribe(a).value();
    auto sb = kernel.subscribe(b).value();
    RawClient raw(server.port());
    REQUIRE(raw.publish("herald-test:shared", R"({"seq":1,"arg":10,"origin":"raw"})") == 1);
    CHECK(sa.recv_blocking({.timeout = 5s})->arg == 10);
    CHECK(sb.recv_blocking({.timeout = 5s})->arg == 10);
    REQUIRE(bridge->release_channel(a));
    CHECK(sa.recv_blocking({.timeout = 1s}).error() == Errc::closed);
    REQUIRE(raw.publish("herald-test:shared", R"({"seq":2,"arg":11,"origin":"raw"})") == 1);
    CHECK(sb.recv_blocking({.timeout = 5s})->arg == 11);
    REQUIRE(bridge->release_channel(b));
    // The last release unsubscribes: Redis counts no receiver once it is processed.
    CHECK(eventually([&] { return raw.publish("herald-test:shared", "{}") == 0; }, 5s));
  }

  TEST_CASE("a message that arrives after its channel was released is counted as foreign") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    RawClient raw(server.port());
    // Redis answers PUBLISH with the number of receivers: each 1 after the release is a message
    // the bridge read for a channel it no longer imports.
    long long delivered_after_release = 0;
    for (int i = 0; i < 50; ++i) {
      const Handle h = bridge->import_channel("gone").value();
      REQUIRE(bridge->release_channel(h));
      const long long n = raw.publish("herald-test:gone", R"({"seq":1,"arg":1,"origin":"raw"})");
      REQUIRE(n >= 0);
      delivered_after_release += n;
    }
    MESSAGE(delivered_after_release << " of 50 messages reached the bridge after the release");
    CHECK(eventually(
        [&] { return json_number(bridge->stats(), "foreign") == delivered_after_release; }, 5s));
    CHECK(json_number(bridge->stats(), "received") == 0);
  }

  TEST_CASE("imports, releases and exports churn while messages flow; destroyed mid-stream") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    std::atomic<bool> stop{false}, stop_churn{false};
    const Handle source = kernel.register_handle().value();
    REQUIRE(bridge->export_handle(source, "churn-0"));
    std::thread notifier([&] {
      for (std::int64_t i = 0; !stop.load(); ++i) (void)kernel.notify(source, i);
    });
    std::thread churn([&] {
      for (int i = 0; !stop_churn.load(); ++i) {
        const std::string channel = "churn-" + std::to_string(i % 4);
        auto h = bridge->import_channel(channel);
        if (!h) continue;
        auto sub = kernel.subscribe(*h, {.capacity = 8});
        if (sub) (void)sub->try_recv();
        if (i % 3 == 0) {
          const Handle extra = kernel.register_handle().value();
          (void)bridge->export_handle(extra, channel);
          (void)kernel.notify(extra, i);
          (void)kernel.unregister_handle(extra);  // the export ends with it
        }
        sub = Errc::closed;  // drop the subscription before its handle goes
        (void)bridge->release_channel(*h);
      }
    });
    const Handle steady = bridge->import_channel("churn-0").value();
    auto sub = kernel.subscribe(steady, {.capacity = 64}).value();
    CHECK(sub.recv_blocking({.timeout = 5s}).has_value());  // the export reaches the import
    std::this_thread::sleep_for(300ms);
    stop_churn = true;
    churn.join();
    bridge.reset();  // mid-stream (the notifier goes on): threads stopped, imports unregistered
    stop = true;
    notifier.join();
    // Whatever was buffered, then closed.
    Result<Notification> last = Errc::empty;
    for (int i = 0; i < 100 && last.error() != Errc::closed; ++i) last = sub.try_recv();
    CHECK(last.error() == Errc::closed);
  }

  TEST_CASE("destroying the bridge completes the waiters on imported handles with closed") {
    RedisServer server;
    HERALD_REDIS_OR_SKIP(server);
    Kernel kernel;
    auto bridge = RedisBridge::connect(kernel, fast_options(server)).value();
    const Handle h = bridge->import_channel("bye").value();
    Result<Notification> outcome = Errc::empty;
    std::thread waiter([&] { outcome = kernel.wait_blocking(h, Ticket{0}, {.timeout = 10s}); });
    REQUIRE(eventually(
        [&] {
          auto st = kernel.stats(h);
          return st && st->waiters == 1;
        },
        5s));
    bridge.reset();
    waiter.join();
    CHECK(outcome.error() == Errc::closed);
  }
}
