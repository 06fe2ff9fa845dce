// The pollable fd under racing notifiers: a consumer that only sleeps in poll() on the fd and
// drains until empty never sleeps on buffered items (poll never times out while something is
// buffered) and receives + drops exactly what was notified.
#include <doctest/doctest.h>

#include <poll.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace herald;

TEST_SUITE("stress: pollable fd") {
  TEST_CASE_TEMPLATE("a poll-and-drain consumer never sleeps on buffered items and loses nothing",
                     P, test::SingleProducer, test::MultiProducer) {
    for (const Overflow overflow : {Overflow::drop_newest, Overflow::keep_latest}) {
      CAPTURE(static_cast<int>(overflow));
      Kernel k;
      const Handle h = k.register_handle({.producers = P::value}).value();
      Subscription s = k.subscribe(h, {.capacity = 64, .overflow = overflow}).value();
      const int fd = s.pollable_fd();
      REQUIRE(fd >= 0);
      const unsigned notifiers = P::value == Producers::single ? 1 : 2;
      std::atomic<bool> stop{false};
      std::atomic<std::uint64_t> sent{0};
      std::vector<std::thread> threads;
      for (unsigned t = 0; t < notifiers; ++t) {
        threads.emplace_back([&] {
          std::uint64_t mine = 0;
          while (!stop.load(std::memory_order_relaxed)) {
            if (k.notify(h, 1)) ++mine;
            if (mine % 64 == 0) std::this_thread::yield();  // let the consumer sleep sometimes
          }
          sent.fetch_add(mine);
        });
      }
      std::uint64_t received = 0;
      std::uint64_t sleeps = 0;
      std::uint64_t missed = 0;  // poll timed out with items buffered: a lost edge
      const auto until = std::chrono::steady_clock::now() + test::stress_duration() / 4;
      while (std::chrono::steady_clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, 200);
        ++sleeps;
        if (r == 0 && s.size() != 0) {
          // Items buffered after 200 ms of unreadable fd. A push landing just now has its write
          // a few instructions behind its count: give it a moment, then it is a lost edge.
          pollfd again{fd, POLLIN, 0};
          if (::poll(&again, 1, 100) == 0) ++missed;
        }
        while (auto n = s.try_recv()) ++received;
      }
      stop = true;
      for (auto& t : threads) t.join();
      // Quiet now: one last drain, and the fd must tell the truth about it.
      {
        pollfd p{fd, POLLIN, 0};
        if (s.size() != 0) CHECK(::poll(&p, 1, 1000) == 1);
      }
      while (auto n = s.try_recv()) ++received;
      pollfd p{fd, POLLIN, 0};
      CHECK(::poll(&p, 1, 0) == 0);  // found empty: unreadable
      MESSAGE(sent.load() << " sent, " << received << " received, " << s.dropped() << " dropped, "
                          << sleeps << " polls");
      CHECK(missed == 0);
      CHECK(received + s.size() + s.dropped() == sent.load());
    }
  }
}
