#pragma once

#include <cstdint>
#include <new>  // for std::launder
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace herald {

/// Every outcome the kernel reports. Data-plane calls return these as values, never throw.
enum class Errc : int {
  unknown_handle = 1,  ///< never registered, forged, or stale (unregistered: generation mismatch)
  closed,              ///< the handle was unregistered while you waited / your subscription drained
  empty,               ///< try_recv: nothing buffered now
  full,                ///< a bounded resource (e.g. a MemPipe buffer) is full
  limit_exceeded,      ///< max_handles, max_subscribers or max_waiters reached
  out_of_memory,       ///< KernelOptions::memory_limit would be exceeded, or allocation failed
  timed_out,
  cancelled,  ///< the std::stop_token in WaitOptions was triggered
  invalid_argument,
};

/// The category of herald's error codes; name() is "herald".
const std::error_category& error_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;
/// A stable lower_snake_case name for each value ("unknown_handle", ...); "unknown" otherwise.
std::string_view to_string(Errc e) noexcept;

namespace detail {
[[noreturn]] void throw_bad_result_access(Errc e);

/// Tag of Result's constructor that writes nothing (see there).
struct ConstructedByCallee {
  explicit ConstructedByCallee() = default;
};
}  // namespace detail

/// A value of T or an Errc, with std::expected's observers.
///
/// value() on an error throws std::system_error carrying the Errc (as std::expected throws
/// bad_expected_access); everything else is noexcept. Move-only T (Subscription) moves out with
/// `std::move(r).value()` or `r.value()` on an rvalue.
template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T> && !std::is_same_v<std::remove_cv_t<T>, Errc>);

 public:
  using value_type = T;
  using error_type = Errc;

  Result() noexcept(
      std::is_nothrow_default_constructible_v<T>) requires std::is_default_constructible_v<T>
      : status_(kHasValue) {
    ::new (static_cast<void*>(&value_)) T();
  }
  Result(Errc e) noexcept : status_(status_of(e)) {}  // NOLINT(google-explicit-constructor)
  Result(const T& v) noexcept(std::is_nothrow_copy_constructible_v<T>)  // NOLINT
      : status_(kHasValue) {
    ::new (static_cast<void*>(&value_)) T(v);
  }
  Result(T&& v) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT
      : status_(kHasValue) {
    ::new (static_cast<void*>(&value_)) T(std::move(v));
  }
  /// Constructs the value in place from `args` (braced, so an aggregate takes its fields), as
  /// std::expected's in_place constructor: no temporary T to copy.
  template <class... Args>
  explicit Result(std::in_place_t /*tag*/,
                  Args&&... args) noexcept(noexcept(T{std::forward<Args>(args)...}))
      : status_(kHasValue) {
    ::new (static_cast<void*>(&value_)) T{std::forward<Args>(args)...};
  }
  /// Writes nothing: a callee constructs the result again in its place (placement new) before
  /// anything reads or destroys it. Kernel::notify() passes its return slot so to an out-of-line
  /// function, which then writes the receipt once, from registers.
  explicit Result(detail::ConstructedByCallee /*tag*/) noexcept {}  // NOLINT(*-member-init)
  Result(const Result& o) noexcept(std::is_nothrow_copy_constructible_v<T>) : status_(o.status_) {
    if (has_value()) ::new (static_cast<void*>(&value_)) T(o.value_);
  }
  Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : status_(o.status_) {
    if (has_value()) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
  }
  Result& operator=(const Result& o) {
    if (this != &o) {
      destroy();
      status_ = o.status_;
      if (has_value()) ::new (static_cast<void*>(&value_)) T(o.value_);
    }
    return *this;
  }
  Result& operator=(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &o) {
      destroy();
      status_ = o.status_;
      if (has_value()) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
    }
    return *this;
  }
  ~Result() { destroy(); }

  bool has_value() const noexcept { return status_ == kHasValue; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The error; meaningful only when !has_value().
  Errc error() const noexcept { return static_cast<Errc>(static_cast<std::uint32_t>(status_)); }

  T& value() & {
    check();
    return value_;
  }
  const T& value() const& {
    check();
    return value_;
  }
  T&& value() && {
    check();
    return std::move(value_);
  }
  const T&& value() const&& {
    check();
    return std::move(value_);
  }
  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? value_ : static_cast<T>(std::forward<U>(fallback));
  }
  template <class U>
  T value_or(U&& fallback) && {
    return has_value() ? std::move(value_) : static_cast<T>(std::forward<U>(fallback));
  }

  /// Unchecked access, as std::expected: the caller has tested has_value().
  T& operator*() & noexcept { return value_; }
  const T& operator*() const& noexcept { return value_; }
  T&& operator*() && noexcept { return std::move(value_); }
  T* operator->() noexcept { return &value_; }
  const T* operator->() const noexcept { return &value_; }

 private:
  void check() const {
    if (!has_value()) detail::throw_bad_result_access(error());
  }
  void destroy() noexcept {
    if (has_value()) value_.~T();
  }

  // The status is one word, written with one store: kHasValue, or the error.
  static constexpr std::uint64_t kHasValue = std::uint64_t{1} << 32;
  static constexpr std::uint64_t status_of(Errc e) noexcept {
    return static_cast<std::uint32_t>(e);
  }

  union {
    T value_;
  };
  std::uint64_t status_;
};

/// Success or an Errc.
template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  using error_type = Errc;

  constexpr Result() noexcept = default;
  constexpr Result(Errc e) noexcept : error_(e), has_value_(false) {}  // NOLINT
  bool has_value() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value_; }
  Errc error() const noexcept { return error_; }
  void value() const {
    if (!has_value_) detail::throw_bad_result_access(error_);
  }
  void operator*() const noexcept {}

 private:
  Errc error_{};
  bool has_value_ = true;
};

}  // namespace herald

template <>
struct std::is_error_code_enum<herald::Errc> : std::true_type {};
