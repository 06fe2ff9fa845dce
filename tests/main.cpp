// The entry point of the doctest suites. Each test case announces itself on stderr (unbuffered,
// so the announcement survives a kill; ctest shows it only for a failing test). With
// HERALD_CASE_LIMIT_S set (ctest sets 300), a case that runs longer is named and aborted: a hang
// fails with the case that hung, instead of at ctest's timeout with its output lost in a buffer.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace {

class CaseWatchdog {
 public:
  static CaseWatchdog& instance() {
    static CaseWatchdog* watchdog = new CaseWatchdog;  // never destroyed: its thread outlives main
    return *watchdog;
  }
  void started(const char* name) {  // a test case's name: a literal, alive until exit
    std::fprintf(stderr, "[case] %s\n", name);
    std::lock_guard lock(mutex_);
    name_ = name;
    since_ = std::chrono::steady_clock::now();
    running_ = true;
  }
  void ended() {
    std::lock_guard lock(mutex_);
    running_ = false;
  }

 private:
  CaseWatchdog() {
    const char* env = std::getenv("HERALD_CASE_LIMIT_S");
    limit_ = std::chrono::seconds(env != nullptr ? std::atoi(env) : 0);
    if (limit_.count() > 0) std::thread([this] { watch(); }).detach();
  }
  void watch() {
    const char* hung = nullptr;
    while (hung == nullptr) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::lock_guard lock(mutex_);
      if (running_ && std::chrono::steady_clock::now() - since_ > limit_) hung = name_;
    }
    // Unlocked: doctest's SIGABRT handler ends the case, which takes the lock.
    std::fprintf(stderr, "[case] %s: still running after %lld s, aborting\n", hung,
                 static_cast<long long>(limit_.count()));
    std::abort();
  }

  std::mutex mutex_;
  const char* name_ = "";
  std::chrono::steady_clock::time_point since_;
  bool running_ = false;
  std::chrono::seconds limit_{};
};

struct CaseAnnouncer : doctest::IReporter {
  explicit CaseAnnouncer(const doctest::ContextOptions& /*options*/) {}
  void report_query(const doctest::QueryData& /*data*/) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& /*stats*/) override {}
  void test_case_start(const doctest::TestCaseData& data) override {
    CaseWatchdog::instance().started(data.m_name);
  }
  void test_case_reenter(const doctest::TestCaseData& /*data*/) override {}
  void test_case_end(const doctest::CurrentTestCaseStats& /*stats*/) override {
    CaseWatchdog::instance().ended();
  }
  void test_case_exception(const doctest::TestCaseException& /*e*/) override {}
  void subcase_start(const doctest::SubcaseSignature& /*signature*/) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& /*data*/) override {}
  void log_message(const doctest::MessageData& /*data*/) override {}
  void test_case_skipped(const doctest::TestCaseData& /*data*/) override {}
};

}  // namespace

REGISTER_LISTENER("case_watchdog", 1, CaseAnnouncer);
