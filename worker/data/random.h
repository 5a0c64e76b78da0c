// Portable, reproducible random numbers for the data layer.
//
// The standard distributions (std::uniform_int_distribution, std::shuffle, ...)
// are implementation-defined, so the same seed could give different data sets
// or batch orders under libstdc++ and libc++. Everything in dfv::data that must
// be reproducible derives its numbers from raw engine bits through the helpers
// below, whose results are fully specified here.
//
// Thread-safety: the free functions are pure; an engine object is not safe for
// concurrent use (give each thread its own).
#ifndef DFV_WORKER_DATA_RANDOM_H_
#define DFV_WORKER_DATA_RANDOM_H_

#include <cstdint>
#include <initializer_list>
#include <random>
#include <utility>
#include <vector>

namespace dfv::data {

// The splitmix64 output function (Steele, Lea, Flood 2014): a bijective mixer
// with good avalanche, used to turn structured keys into seeds.
inline uint64_t SplitMix64Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Hashes an ordered list of integers (seed, stream id, epoch, ...) into one
// 64-bit seed. Distinct lists give unrelated seeds; the result is a pure
// function of the values and their order.
inline uint64_t MixSeed(std::initializer_list<uint64_t> values) {
  uint64_t h = 0x6A09E667F3BCC908ULL;  // sqrt(2) fraction: any fixed constant
  for (uint64_t v : values) h = SplitMix64Mix(h + 0x9E3779B97F4A7C15ULL + SplitMix64Mix(v));
  return h;
}

// A tiny, fast generator (splitmix64) for short per-item streams such as one
// sprite's factors: cheap to seed, so each item can have its own stream.
class SplitMix64 {
 public:
  using result_type = uint64_t;
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return ~uint64_t{0}; }
  uint64_t operator()() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return SplitMix64Mix(state_);
  }

 private:
  uint64_t state_;
};

// A uniform double in [0, 1) from the top 53 bits of one engine draw.
template <typename Engine>
double UniformDouble(Engine& engine) {
  static_assert(Engine::min() == 0 && Engine::max() == ~uint64_t{0}, "needs a 64-bit engine");
  return static_cast<double>(engine() >> 11) * 0x1.0p-53;
}

// A uniform double in [lo, hi).
template <typename Engine>
double UniformDouble(Engine& engine, double lo, double hi) {
  return lo + (hi - lo) * UniformDouble(engine);
}

// An unbiased uniform integer in [0, n), n > 0, by rejection: draws below
// 2^64 mod n are discarded so every residue is equally likely.
template <typename Engine>
uint64_t UniformBelow(Engine& engine, uint64_t n) {
  static_assert(Engine::min() == 0 && Engine::max() == ~uint64_t{0}, "needs a 64-bit engine");
  const uint64_t threshold = (0 - n) % n;  // == 2^64 mod n
  while (true) {
    uint64_t r = engine();
    if (r >= threshold) return r % n;
  }
}

// Fisher-Yates shuffle (Durstenfeld's form: from the back, swapping with a
// uniform position at or before the current one).
template <typename T, typename Engine>
void Shuffle(std::vector<T>& items, Engine& engine) {
  for (size_t i = items.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(UniformBelow(engine, i));
    std::swap(items[i - 1], items[j]);
  }
}

// The permutation of 0..n-1 that Shuffle produces from a std::mt19937_64
// seeded with `seed` (the engine's output is fixed by the C++ standard).
inline std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  std::mt19937_64 engine(seed);
  Shuffle(perm, engine);
  return perm;
}

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_RANDOM_H_
