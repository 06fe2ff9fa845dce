#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>  // for std::hash

namespace herald {

/// Names one registered notification source: {slot index, generation} in 8 bytes.
///
/// Trivially copyable. Any 64-bit value is safe to pass to the kernel: a value that does not name
/// a live registration (never issued, forged, or unregistered) gets Errc::unknown_handle. Once
/// unregistered a handle never becomes valid again, even when its slot is reused, because every
/// reuse of a slot carries a new generation and a slot whose generation would wrap is retired.
class Handle {
 public:
  /// The invalid handle; raw() == 0.
  constexpr Handle() noexcept = default;
  static constexpr Handle from_raw(std::uint64_t raw) noexcept { return Handle(raw); }
  constexpr std::uint64_t raw() const noexcept { return raw_; }
  /// True unless this is the invalid handle; says nothing of liveness.
  constexpr explicit operator bool() const noexcept { return raw_ != 0; }
  friend constexpr bool operator==(Handle, Handle) noexcept = default;

  /// The slot index and generation this handle names (meaningful for handles the kernel issued).
  constexpr std::uint32_t index() const noexcept { return static_cast<std::uint32_t>(raw_); }
  constexpr std::uint32_t generation() const noexcept {
    return static_cast<std::uint32_t>(raw_ >> 32);
  }
  static constexpr Handle make(std::uint32_t index, std::uint32_t generation) noexcept {
    return Handle((std::uint64_t{generation} << 32) | index);
  }

 private:
  constexpr explicit Handle(std::uint64_t raw) noexcept : raw_(raw) {}
  std::uint64_t raw_ = 0;
};

static_assert(sizeof(Handle) == 8);

}  // namespace herald

template <>
struct std::hash<herald::Handle> {
  std::size_t operator()(herald::Handle h) const noexcept {
    return std::hash<std::uint64_t>{}(h.raw());
  }
};
