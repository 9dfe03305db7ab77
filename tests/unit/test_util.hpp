// SPDX-License-Identifier: GPL-2.0
// Helpers shared by the unit tests of the portable core.
#pragma once

#include <catch2/catch.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>

#include "twinfs_core.h"

namespace twinfs_test {

// One file-system block, aligned like a kernel page.
struct alignas(64) Block {
	std::array<u8, TWINFS_BLOCK_SIZE> bytes{};

	u8 *data() { return bytes.data(); }
	const u8 *data() const { return bytes.data(); }
	bool operator==(const Block &) const = default;
};

// A deterministic generator for the randomized tests.  The seed follows
// Catch2's --rng-seed (0 unless given) so that a failure can be replayed;
// every test mixes in its own salt so the tests do not share a sequence.
inline std::mt19937_64 make_rng(std::uint64_t salt)
{
	const std::uint64_t seed = Catch::rngSeed() * 0x9e3779b97f4a7c15ull ^ salt;
	return std::mt19937_64(seed);
}

// Uniform integer in [lo, hi].
template <typename T, typename Rng>
T uniform(Rng &rng, T lo, T hi)
{
	return std::uniform_int_distribution<T>(lo, hi)(rng);
}

} // namespace twinfs_test
