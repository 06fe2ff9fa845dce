#pragma once

// herald: a lock-minimal notification kernel. This header brings in the whole public API.

#include "herald/awaitables.hpp"    // IWYU pragma: export
#include "herald/error.hpp"         // IWYU pragma: export
#include "herald/executor.hpp"      // IWYU pragma: export
#include "herald/handle.hpp"        // IWYU pragma: export
#include "herald/kernel.hpp"        // IWYU pragma: export
#include "herald/options.hpp"       // IWYU pragma: export
#include "herald/records.hpp"       // IWYU pragma: export
#include "herald/subscription.hpp"  // IWYU pragma: export
#include "herald/task.hpp"          // IWYU pragma: export
