#include <string>
#include <system_error>

#include "herald/error.hpp"

namespace herald {
namespace {

class HeraldCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "herald"; }
  std::string message(int value) const override {
    return std::string(to_string(static_cast<Errc>(value)));
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const HeraldCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), error_category()}; }

std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::unknown_handle:
      return "unknown_handle";
    case Errc::closed:
      return "closed";
    case Errc::empty:
      return "empty";
    case Errc::full:
      return "full";
    case Errc::limit_exceeded:
      return "limit_exceeded";
    case Errc::out_of_memory:
      return "out_of_memory";
    case Errc::timed_out:
      return "timed_out";
    case Errc::cancelled:
      return "cancelled";
    case Errc::invalid_argument:
      return "invalid_argument";
  }
  return "unknown";
}

namespace detail {
void throw_bad_result_access(Errc e) { throw std::system_error(make_error_code(e)); }
}  // namespace detail

}  // namespace herald
