// herald-bench's entry point: Google Benchmark's main, plus the build and machine facts that
// tools/bench-report writes beside every table (compiler, flags, CPU model).
#include <benchmark/benchmark.h>

#include <fstream>
#include <string>

namespace {

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__clang__)
  benchmark::AddCustomContext("herald_compiler", "clang++ " __clang_version__);
#else
  benchmark::AddCustomContext("herald_compiler", "g++ " __VERSION__);
#endif
  benchmark::AddCustomContext("herald_flags", HERALD_BENCH_FLAGS);
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
