// The outbox suite's entry point: doctest, or one of the child modes the crash and cross-process
// tests start (this same binary, so the child is built with the same sanitizers).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>

#include "outbox/outbox_support.hpp"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--crash-child") == 0) {
    return herald::test::crash_child(argc, argv);
  }
  if (argc >= 2 && std::strcmp(argv[1], "--claim-child") == 0) {
    return herald::test::claim_child(argc, argv);
  }
  doctest::Context context(argc, argv);
  return context.run();
}
