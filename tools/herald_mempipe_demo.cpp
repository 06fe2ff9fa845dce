// herald-mempipe-demo: stdin lines go to one MemPipe writer; three coroutine readers on one
// EventLoop read 4-byte chunks and print them. An empty line or EOF closes the writer.
//
//   $ printf 'hello world\n' | herald-mempipe-demo
//   Enter text (empty line to quit):
//   (r1): hell
//   ...
#include <unistd.h>
#include <herald/herald.hpp>
#include <herald/mempipe.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

namespace {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

herald::Task<void> reader_task(const char* name, herald::MemPipe::Reader reader,
                               std::atomic<int>& remaining, herald::EventLoop& loop) {
  std::array<std::byte, 4> buffer{};
  for (;;) {
    const herald::ReadResult r = co_await reader.read(buffer);
    if (r.bytes != 0) {
      std::printf("(%s): %.*s\n", name, static_cast<int>(r.bytes),
                  reinterpret_cast<const char*>(buffer.data()));
    } else if (r.error != 0) {
      std::printf("(%s) error %d\n", name, r.error);
      break;
    } else {
      std::printf("(%s) EOF\n", name);
      break;
    }
  }
  if (remaining.fetch_sub(1) == 1) loop.stop();
}

}  // namespace

int main() {
  // Piped output is written in large blocks; a terminal sees each chunk as it is read.
  if (::isatty(STDOUT_FILENO) == 0) std::setvbuf(stdout, nullptr, _IOFBF, 1 << 20);
  std::ios::sync_with_stdio(false);

  herald::Kernel kernel;
  herald::EventLoop loop;
  auto created = herald::MemPipe::create(kernel, {.debug_hint = "demo"});
  if (!created) {
    std::fprintf(stderr, "herald-mempipe-demo: %s\n", herald::to_string(created.error()).data());
    return 1;
  }
  std::unique_ptr<herald::MemPipe> pipe = std::move(created).value();

  std::printf("Enter text (empty line to quit):\n");
  std::fflush(stdout);

  std::atomic<int> remaining{3};
  for (const char* name : {"r1", "r2", "r3"})
    herald::spawn(loop, reader_task(name, pipe->reader(), remaining, loop));

  std::thread writer([&] {
    std::string line;
    while (std::getline(std::cin, line)) {
      const std::string_view text = trim(line);
      if (text.empty()) break;
      if (auto w = pipe->write(text); !w) {
        std::fprintf(stderr, "write failed: %s\n", herald::to_string(w.error()).data());
        break;
      }
    }
    pipe->close();
    std::printf("Writer closed\n");
  });

  loop.run();
  writer.join();
  std::printf("All tasks completed\n");
  return 0;
}
