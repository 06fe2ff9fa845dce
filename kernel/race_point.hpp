#pragma once

// HERALD_RACE_POINT() marks a window in a concurrent protocol (a node detached but not yet
// completed, a slot claimed but not yet written, ...). In normal builds it is nothing. The test
// build of the library (target herald_race, HERALD_RACE_INJECTION) makes it yield, spin or sleep
// at random, seeded by HERALD_RACE_SEED, to widen those windows while stress tests race the real
// operations.

#ifdef HERALD_RACE_INJECTION
namespace herald::detail {
void race_point() noexcept;
}  // namespace herald::detail
#define HERALD_RACE_POINT() ::herald::detail::race_point()
#else
#define HERALD_RACE_POINT() static_cast<void>(0)
#endif
