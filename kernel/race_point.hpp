#pragma once

// HERALD_RACE_POINT("name") marks a window in a concurrent protocol (a node detached but not yet
// completed, a slot claimed but not yet written, ...). In normal builds it is nothing. The test
// build of the library (target herald_race, HERALD_RACE_INJECTION) makes it yield, spin or sleep
// at random, seeded by HERALD_RACE_SEED, to widen those windows while stress tests race the real
// operations; or, while a test has installed a hook, calls the hook with the point's name, so that
// a test can run another operation at exactly that instant and reproduce a window every time.

#ifdef HERALD_RACE_INJECTION
namespace herald::detail {
void race_point(const char* where) noexcept;
/// Called at every race point instead of the random delay while installed; nullptr restores the
/// random delays. The hook runs on the thread that reached the point, inside the protocol's
/// window: it may call public kernel operations that the window is meant to race.
using RaceHook = void (*)(const char* where) noexcept;
void set_race_hook(RaceHook hook) noexcept;
}  // namespace herald::detail
#define HERALD_RACE_POINT(where) ::herald::detail::race_point(where)
#else
#define HERALD_RACE_POINT(where) static_cast<void>(0)
#endif
