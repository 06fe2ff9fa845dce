// Compiled against the public include directory only: the umbrella header is self-contained.
#include <herald/herald.hpp>

int main() {
  herald::Kernel kernel;
  const auto h = kernel.register_handle();
  return h && kernel.notify(*h, 1) ? 0 : 1;
}
