// SPDX-License-Identifier: GPL-2.0
// The Catch2 main of build/unit-tests.  Run `build/unit-tests --help` for
// the options; `--rng-seed N` (or `--rng-seed time`) changes the seed of the
// randomized model tests, which otherwise use a fixed one.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
