// Subscription::pollable_fd (EMBEDDING.md §1): readable exactly while try_recv() would return a
// notification or closed; unreadable only after a receive found the ring empty.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "test_support.hpp"

using namespace herald;

namespace {

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

TEST_SUITE("pollable subscriptions") {
  TEST_CASE_TEMPLATE("the fd is readable exactly while something or closed is there to take", P,
                     test::SingleProducer, test::MultiProducer) {
    Kernel k;
    const Handle h = k.register_handle({.producers = P::value}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    const int fd = s.pollable_fd();
    REQUIRE(fd >= 0);
    CHECK(s.pollable_fd() == fd);  // one fd per subscription
    CHECK_FALSE(readable(fd));
    (void)k.notify(h, 1);
    CHECK(readable(fd));
    (void)k.notify(h, 2);
    CHECK(readable(fd));
    CHECK(s.try_recv().value().arg == 1);
    CHECK(readable(fd));  // one still buffered: readable until a receive finds the ring empty
    CHECK(s.try_recv().value().arg == 2);
    CHECK(readable(fd));  // not yet known to be empty
    CHECK(s.try_recv().error() == Errc::empty);
    CHECK_FALSE(readable(fd));
    (void)k.notify(h, 3);
    CHECK(readable(fd));
    Notification batch[4];
    CHECK(s.try_recv_batch(batch) == 1);  // fewer than asked: it found the ring empty
    CHECK_FALSE(readable(fd));
    (void)k.notify(h, 4);
    REQUIRE(k.unregister_handle(h));
    CHECK(readable(fd));
    CHECK(s.try_recv().value().arg == 4);
    CHECK(s.try_recv().error() == Errc::closed);
    CHECK(readable(fd));  // closed stays readable: try_recv keeps answering closed
  }

  TEST_CASE("an fd asked for while items are buffered is readable at once") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    (void)k.notify(h, 1);
    const int fd = s.pollable_fd();
    REQUIRE(fd >= 0);
    CHECK(readable(fd));
  }

  TEST_CASE("an fd asked for after unregister is readable (closed is there to take)") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    Subscription s = k.subscribe(h, {.capacity = 4}).value();
    REQUIRE(k.unregister_handle(h));
    const int fd = s.pollable_fd();
    REQUIRE(fd >= 0);
    CHECK(readable(fd));
  }

  TEST_CASE("edge-triggered epoll reports each empty-to-non-empty edge once") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    Subscription s = k.subscribe(h, {.capacity = 8}).value();
    const int fd = s.pollable_fd();
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    REQUIRE(ep >= 0);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    REQUIRE(::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
    epoll_event out{};
    CHECK(::epoll_wait(ep, &out, 1, 0) == 0);
    for (int round = 0; round < 3; ++round) {
      (void)k.notify(h, round);
      (void)k.notify(h, round);  // the second push is no new edge
      CHECK(::epoll_wait(ep, &out, 1, 0) == 1);
      CHECK(::epoll_wait(ep, &out, 1, 0) == 0);
      int got = 0;
      while (s.try_recv()) ++got;  // drain until empty
      CHECK(got == 2);
      CHECK(::epoll_wait(ep, &out, 1, 0) == 0);
    }
    ::close(ep);
  }

  TEST_CASE("destroying the subscription closes its fd; an empty subscription has none") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    int fd = -1;
    {
      Subscription s = k.subscribe(h).value();
      fd = s.pollable_fd();
      REQUIRE(fd >= 0);
      CHECK(::fcntl(fd, F_GETFD) != -1);
    }
    errno = 0;
    CHECK(::fcntl(fd, F_GETFD) == -1);
    CHECK(errno == EBADF);
    Subscription empty;
    errno = 0;
    CHECK(empty.pollable_fd() == -1);
    CHECK(errno == EBADF);
  }

  TEST_CASE("a subscription whose fd is never read does not slow or break notify") {
    Kernel k;
    const Handle h = k.register_handle({}).value();
    Subscription s = k.subscribe(h, {.capacity = 2}).value();
    const int fd = s.pollable_fd();
    for (int i = 0; i < 10000; ++i) (void)k.notify(h, i);
    CHECK(readable(fd));
    CHECK(s.size() + s.dropped() == 10000);
  }
}
