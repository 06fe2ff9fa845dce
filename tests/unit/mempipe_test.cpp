#include <doctest/doctest.h>

#include <cerrno>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <herald/mempipe.hpp>

#include "test_support.hpp"

using namespace herald;
using namespace std::chrono_literals;

namespace {

std::string read_all_blocking(MemPipe::Reader& r, std::size_t chunk, ReadResult* last = nullptr) {
  std::string out;
  std::vector<std::byte> buf(chunk);
  for (;;) {
    const ReadResult res = r.read_blocking(buf);
    if (!res) {
      if (last != nullptr) *last = res;
      return out;
    }
    out.append(reinterpret_cast<const char*>(buf.data()), res.bytes);
  }
}

Task<void> read_all(MemPipe::Reader& r, std::size_t chunk, std::string& out, ReadResult& last,
                    bool& done) {
  std::vector<std::byte> buf(chunk);
  for (;;) {
    const ReadResult res = co_await r.read(buf);
    if (!res) {
      last = res;
      break;
    }
    out.append(reinterpret_cast<const char*>(buf.data()), res.bytes);
  }
  done = true;
}

std::string as_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

TEST_SUITE("mempipe") {
  TEST_CASE("non-blocking write: writes complete with no readers and never wait for slow ones") {
    Kernel k;
    auto pipe = MemPipe::create(k).value();
    const std::string block(4096, 'x');
    for (int i = 0; i < 1000; ++i) REQUIRE(pipe->write(block));  // no reader at all
    MemPipe::Reader idle = pipe->reader();                       // a reader that never reads
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) REQUIRE(pipe->write(block));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(pipe->size() == 2000u * 4096u);
    CHECK(idle.position() == 0);
  }

  TEST_CASE("one-to-many: every reader sees the identical byte sequence from the start") {
    Kernel k;
    EventLoop loop;
    auto pipe = MemPipe::create(k).value();
    std::mt19937_64 rng(test::test_seed());
    std::string written;
    for (int i = 0; i < 200; ++i) {  // some data before any reader exists
      written += static_cast<char>('a' + rng() % 26);
    }
    REQUIRE(pipe->write(written));
    MemPipe::Reader r1 = pipe->reader(), r2 = pipe->reader(), r3 = pipe->reader();
    std::string got1, got3;
    ReadResult last1, last3;
    bool done1 = false, done3 = false;
    spawn(loop, read_all(r1, 4, got1, last1, done1));
    std::string got2;
    std::thread blocking([&] { got2 = read_all_blocking(r2, 7); });
    spawn(loop, read_all(r3, 4096, got3, last3, done3));
    std::thread writer([&] {
      std::mt19937_64 wrng(7);
      std::string more;
      for (int i = 0; i < 2000; ++i) {
        std::string piece(1 + wrng() % 3000, static_cast<char>('A' + wrng() % 26));
        REQUIRE(pipe->write(piece));
        more += piece;
      }
      written += more;
      pipe->close();
    });
    while (!(done1 && done3)) loop.poll();
    writer.join();
    blocking.join();
    CHECK(got1.size() == written.size());
    CHECK(got1 == written);
    CHECK(got2 == written);
    CHECK(got3 == written);
    CHECK(last1.eof);
    CHECK(last3.eof);
  }

  TEST_CASE("blocking read: a read waits while the writer is open and nothing is new") {
    Kernel k;
    auto pipe = MemPipe::create(k).value();
    MemPipe::Reader r = pipe->reader();
    std::atomic<bool> returned{false};
    std::string got;
    std::thread reader([&] {
      std::vector<std::byte> buf(16);
      const ReadResult res = r.read_blocking(buf);
      got = as_string(std::span(buf).first(res.bytes));
      returned = true;
    });
    std::this_thread::sleep_for(30ms);
    CHECK_FALSE(returned.load());
    REQUIRE(pipe->write("hello"));
    reader.join();
    CHECK(got == "hello");
  }

  TEST_CASE("eof-after-data: EOF only after everything written") {
    Kernel k;
    auto pipe = MemPipe::create(k).value();
    REQUIRE(pipe->write("abcde"));
    pipe->close();
    MemPipe::Reader r = pipe->reader();
    ReadResult last;
    CHECK(read_all_blocking(r, 2, &last) == "abcde");
    CHECK(last.eof);
    CHECK(last.error == 0);
    std::vector<std::byte> buf(4);
    CHECK(r.read_blocking(buf).eof);  // and it stays EOF
    CHECK(pipe->write("late").error() == Errc::closed);
  }

  TEST_CASE("error-after-data: the writer's error reaches a reader after all data, then always") {
    Kernel k;
    auto pipe = MemPipe::create(k).value();
    REQUIRE(pipe->write("abcdef"));
    pipe->fail(EIO);
    MemPipe::Reader r = pipe->reader();
    std::vector<std::byte> buf(4);
    CHECK(as_string(std::span(buf).first(r.read_blocking(buf).bytes)) == "abcd");
    CHECK(as_string(std::span(buf).first(r.read_blocking(buf).bytes)) == "ef");
    const ReadResult e1 = r.read_blocking(buf);
    CHECK(e1.error == EIO);
    CHECK_FALSE(e1.eof);
    CHECK(r.read_blocking(buf).error == EIO);
    pipe->close();  // the first ending counts
    CHECK(r.read_blocking(buf).error == EIO);
  }

  TEST_CASE("reader-error-immediate: a reader's own error comes at once, whatever data waits") {
    Kernel k;
    auto pipe = MemPipe::create(k).value();
    REQUIRE(pipe->write("pending data"));
    MemPipe::Reader r = pipe->reader();
    MemPipe::Reader other = pipe->reader();
    r.fail(EPIPE);
    std::vector<std::byte> buf(64);
    CHECK(r.read_blocking(buf).error == EPIPE);
    CHECK(r.position() == 0);
    CHECK(other.read_blocking(buf).bytes == 12);  // other readers are unaffected
  }

  TEST_CASE("an optional capacity bounds the buffer: a write past it fails with full") {
    Kernel k;
    auto pipe = MemPipe::create(k, {.capacity = 10}).value();
    CHECK(pipe->write("12345678"));
    CHECK(pipe->write("abc").error() == Errc::full);
    CHECK(pipe->size() == 8);  // nothing of the refused write went in
    CHECK(pipe->write("ab"));
    CHECK(pipe->write("x").error() == Errc::full);
  }

  TEST_CASE("a coroutine reader waits for a writer on another thread, and sees EOF at the end") {
    Kernel k;
    EventLoop loop;
    auto pipe = MemPipe::create(k).value();
    MemPipe::Reader r = pipe->reader();
    std::string got;
    ReadResult last;
    bool done = false;
    spawn(loop, read_all(r, 3, got, last, done));
    loop.poll();
    CHECK_FALSE(done);
    std::thread writer([&] {
      for (int i = 0; i < 50; ++i) {
        REQUIRE(pipe->write(std::to_string(i)));
        std::this_thread::sleep_for(100us);
      }
      pipe->close();
    });
    while (!done) loop.poll();
    writer.join();
    std::string expected;
    for (int i = 0; i < 50; ++i) expected += std::to_string(i);
    CHECK(got == expected);
    CHECK(last.eof);
  }

  TEST_CASE("destroying the pipe ends a waiting reader with EOF") {
    Kernel k;
    auto pipe = MemPipe::create(k).value();
    MemPipe::Reader r = pipe->reader();
    std::atomic<bool> eof{false};
    std::thread reader([&] {
      std::vector<std::byte> buf(4);
      eof = r.read_blocking(buf).eof;
    });
    while (k.stats(pipe->handle()).value().waiters == 0) std::this_thread::yield();
    pipe.reset();
    reader.join();
    CHECK(eof.load());
    CHECK(k.stats().live_handles == 0);
  }
}
