#pragma once

#include <thread>

#include "config.hpp"
#include "wait/futex.hpp"

namespace herald::detail {

/// Before parking, a blocking wait polls its condition: kSpinPauses rounds of a pause, then
/// kSpinYields rounds of sched_yield. These are the counts std::atomic::wait uses in libstdc++ 12
/// (12 + 4). For a round trip between two threads on a 2-vCPU VM they make the reply usually arrive
/// before the waiter sleeps: pingpong_blocking/herald went from 46 us (4.7x the std::atomic::wait
/// peer, which spins the same way) to 1.6 us in one run. A wait that does park has first spent a
/// few microseconds of CPU, mostly in sched_yield.
inline constexpr unsigned kSpinPauses = 12;
inline constexpr unsigned kSpinYields = 4;

/// One round of a wait for another thread that is a few instructions from done (unless it was
/// preempted): 2^round pauses for the first 8 rounds, then a sched_yield per round.
inline void spin_backoff(unsigned round) noexcept {
  if (round < 8) {
    for (unsigned i = 0; i < (1u << round); ++i) cpu_relax();
  } else {
    std::this_thread::yield();
  }
}

/// Polls `ready()` through the spin phase; true as soon as it returns true, false when the phase
/// ends, `deadline` passes, or `give_up()` returns true.
template <class Ready, class GiveUp>
bool spin_before_park(Ready ready, GiveUp give_up, Clock::time_point deadline) noexcept {
  for (unsigned round = 0; round < kSpinPauses + kSpinYields; ++round) {
    if (round < kSpinPauses) {
      cpu_relax();
    } else {
      std::this_thread::yield();
      if (Clock::now() >= deadline) return false;
    }
    if (give_up()) return false;
    if (ready()) return true;
  }
  return false;
}

}  // namespace herald::detail
