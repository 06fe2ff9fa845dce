// The bridge suite's entry point: doctest, or the child mode the cross-process test starts (this
// same binary, so the child is built with the same sanitizers).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>

#include "bridge/bridge_support.hpp"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--notify-child") == 0) {
    return herald::test::notify_child(argc, argv);
  }
  doctest::Context context(argc, argv);
  return context.run();
}
