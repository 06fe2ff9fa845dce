#include <doctest/doctest.h>

#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include <herald/records.hpp>

#include "test_support.hpp"

using namespace herald;

TEST_SUITE("errors") {
  TEST_CASE("the error category is named herald and round-trips every Errc") {
    CHECK(std::string(error_category().name()) == "herald");
    static_assert(std::is_error_code_enum_v<Errc>);
    for (int v = 1; v <= static_cast<int>(Errc::invalid_argument); ++v) {
      const auto e = static_cast<Errc>(v);
      const std::error_code code = e;  // implicit, through is_error_code_enum
      CHECK(code == make_error_code(e));
      CHECK(&code.category() == &error_category());
      CHECK(code.value() == v);
      CHECK(code.message() == std::string(to_string(e)));
      CHECK(to_string(e) != "unknown");
    }
    CHECK(to_string(Errc::unknown_handle) == "unknown_handle");
    CHECK(to_string(Errc::invalid_argument) == "invalid_argument");
    CHECK(to_string(static_cast<Errc>(99)) == "unknown");
  }

  TEST_CASE("Result holds a value or an Errc with std::expected's observers") {
    Result<int> ok = 7;
    REQUIRE(ok.has_value());
    CHECK(static_cast<bool>(ok));
    CHECK(*ok == 7);
    CHECK(ok.value() == 7);
    CHECK(ok.value_or(3) == 7);

    Result<int> bad = Errc::empty;
    CHECK_FALSE(bad.has_value());
    CHECK(bad.error() == Errc::empty);
    CHECK(bad.value_or(3) == 3);
    CHECK_THROWS_AS((void)bad.value(), std::system_error);

    Result<void> done;
    CHECK(done.has_value());
    Result<void> failed = Errc::closed;
    CHECK(failed.error() == Errc::closed);
    CHECK_THROWS_AS(failed.value(), std::system_error);
  }

  TEST_CASE("Result builds its value in place, and its status survives copies and assignment") {
    const Result<NotifyReceipt> built(std::in_place, std::uint64_t{41}, 2U, 3U, 4U);
    REQUIRE(built.has_value());
    CHECK(built->seq == 41);
    CHECK(built->delivered == 2);
    CHECK(built->dropped == 3);
    CHECK(built->woken == 4);
    CHECK(sizeof(Result<NotifyReceipt>) == 32);  // a receipt and one status word

    Result<NotifyReceipt> copy = built;
    CHECK(copy.has_value());
    CHECK(copy->seq == 41);
    copy = Errc::unknown_handle;
    CHECK_FALSE(copy.has_value());
    CHECK(copy.error() == Errc::unknown_handle);
    copy = built;
    CHECK(copy.has_value());
    CHECK(copy->woken == 4);
    for (const Errc e : {Errc::unknown_handle, Errc::closed, Errc::invalid_argument}) {
      const Result<NotifyReceipt> failed = e;
      CHECK_FALSE(failed.has_value());
      CHECK(failed.error() == e);
    }
  }

  TEST_CASE("a move-only value moves out of an rvalue Result") {
    struct MoveOnly {
      explicit MoveOnly(int v) : v(v) {}
      MoveOnly(MoveOnly&& o) noexcept : v(o.v) { o.v = -1; }
      MoveOnly(const MoveOnly&) = delete;
      int v;
    };
    Result<MoveOnly> r = MoveOnly(5);
    MoveOnly m = std::move(r).value();
    CHECK(m.v == 5);
    auto make = [] { return Result<MoveOnly>(MoveOnly(6)); };
    CHECK(make().value().v == 6);
    CHECK(make()->v == 6);
  }
}
