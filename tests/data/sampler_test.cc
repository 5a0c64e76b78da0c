#include "worker/data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "worker/data/random.h"

namespace dfv::data {
namespace {

TEST(RandomTest, EnginesMatchReferenceValues) {
  // splitmix64 from state 0 (Vigna's reference splitmix64.c).
  SplitMix64 sm(0);
  EXPECT_EQ(sm(), 0xE220A8397B1DCDAFULL);
  // The C++ standard fixes mt19937_64's 10000th output for the default seed.
  std::mt19937_64 mt;
  mt.discard(9999);
  EXPECT_EQ(mt(), 9981545732273789042ULL);
}

TEST(RandomTest, UniformBelowIsInRangeAndRoughlyUniform) {
  SplitMix64 rng(42);
  std::vector<int> counts(6);
  for (int k = 0; k < 60000; ++k) {
    uint64_t v = UniformBelow(rng, 6);
    ASSERT_LT(v, 6u);
    counts[v]++;
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);
  for (int k = 0; k < 1000; ++k) {
    double d = UniformDouble(rng);
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
}

TEST(RandomTest, MixSeedSeparatesKeys) {
  EXPECT_EQ(MixSeed({1, 2, 3}), MixSeed({1, 2, 3}));
  EXPECT_NE(MixSeed({1, 2, 3}), MixSeed({1, 3, 2}));
  EXPECT_NE(MixSeed({1, 2}), MixSeed({1, 2, 0}));
}

TEST(EpochSamplerTest, PermutationIsAPermutationAndPinned) {
  std::vector<int64_t> p = EpochSampler::EpochPermutation(1000, 1, 0);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_NE(p, iota);
  EXPECT_EQ(p, EpochSampler::EpochPermutation(1000, 1, 0));
  EXPECT_NE(p, EpochSampler::EpochPermutation(1000, 1, 1));  // reshuffled per epoch
  EXPECT_NE(p, EpochSampler::EpochPermutation(1000, 2, 0));  // and per seed
  // Pinned: every job's data order depends on these values. If this fails,
  // the shuffle changed and resumed jobs would see different data.
  std::vector<int64_t> head(p.begin(), p.begin() + 8);
  EXPECT_EQ(head, (std::vector<int64_t>{152, 956, 519, 664, 439, 827, 655, 835}));
}

TEST(EpochSamplerTest, ShardsAreDisjointEqualAndCoverAllButARemainder) {
  const int64_t n = 103;
  const int world = 3;
  const int64_t batch = 4;
  for (int64_t epoch : {0, 1, 5}) {
    std::set<int64_t> seen;
    for (int rank = 0; rank < world; ++rank) {
      auto sampler = EpochSampler::Create(n, {batch, 9, rank, world});
      ASSERT_TRUE(sampler.ok()) << sampler.status();
      EXPECT_EQ(sampler->StepsPerEpoch(), 8);  // floor(103 / 12)
      std::vector<int64_t> shard = sampler->Shard(epoch);
      ASSERT_EQ(shard.size(), 32u);
      for (int64_t i : shard) {
        ASSERT_GE(i, 0);
        ASSERT_LT(i, n);
        EXPECT_TRUE(seen.insert(i).second) << "index " << i << " in two shards";
      }
    }
    EXPECT_EQ(seen.size(), 96u);
    EXPECT_LT(n - static_cast<int64_t>(seen.size()), world * batch);
  }
}

TEST(EpochSamplerTest, RanksConcatenateToTheSingleProcessBatch) {
  const int64_t n = 250;
  auto single = EpochSampler::Create(n, {12, 3, 0, 1});
  ASSERT_TRUE(single.ok());
  for (int64_t step = 0; step < single->StepsPerEpoch(); ++step) {
    std::vector<int64_t> joined;
    for (int rank = 0; rank < 3; ++rank) {
      auto sampler = EpochSampler::Create(n, {4, 3, rank, 3});
      ASSERT_TRUE(sampler.ok());
      ASSERT_EQ(sampler->StepsPerEpoch(), single->StepsPerEpoch());
      std::vector<int64_t> b = sampler->Batch(2, step);
      joined.insert(joined.end(), b.begin(), b.end());
    }
    EXPECT_EQ(joined, single->Batch(2, step));
  }
}

TEST(EpochSamplerTest, SameSeedSameShardsAndEpochsDiffer) {
  auto a = EpochSampler::Create(500, {8, 77, 1, 2});
  auto b = EpochSampler::Create(500, {8, 77, 1, 2});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->Shard(3), b->Shard(3));
  EXPECT_NE(a->Shard(3), a->Shard(4));
  std::vector<int64_t> shard = a->Shard(3);
  EXPECT_EQ(a->Batch(3, 5), std::vector<int64_t>(shard.begin() + 40, shard.begin() + 48));
  EXPECT_TRUE(a->Batch(3, a->StepsPerEpoch()).empty());
}

TEST(EpochSamplerTest, RejectsBadOptions) {
  EXPECT_EQ(EpochSampler::Create(100, {0, 1, 0, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EpochSampler::Create(100, {4, 1, 2, 2}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EpochSampler::Create(100, {4, 1, -1, 2}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EpochSampler::Create(100, {4, 1, 0, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EpochSampler::Create(7, {4, 1, 0, 2}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(EpochSampler::Create(8, {4, 1, 1, 2}).ok());
}

std::vector<int64_t> RandomLabels(int64_t n, int classes, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(static_cast<int64_t>(UniformBelow(rng, classes)));
  return labels;
}

TEST(PairSamplerTest, SameClassPartnersShareLabelAndDifferInIndex) {
  std::vector<int64_t> labels = RandomLabels(400, 5, 1);
  auto epochs = EpochSampler::Create(400, {16, 5, 1, 2});
  auto pairs = PairSampler::Create(labels, 5);
  ASSERT_TRUE(epochs.ok() && pairs.ok());
  std::vector<int64_t> shard = epochs->Shard(0);
  pairs->SetShard(shard);
  std::set<int64_t> in_shard(shard.begin(), shard.end());
  for (int64_t step = 0; step < epochs->StepsPerEpoch(); ++step) {
    std::vector<int64_t> batch(shard.begin() + step * 16, shard.begin() + (step + 1) * 16);
    auto same = pairs->SameClass(batch, {5, 0, step, 1});
    ASSERT_TRUE(same.ok());
    ASSERT_EQ(same->size(), batch.size());
    for (size_t k = 0; k < batch.size(); ++k) {
      EXPECT_EQ(labels[static_cast<size_t>((*same)[k])], labels[static_cast<size_t>(batch[k])]);
      EXPECT_NE((*same)[k], batch[k]);
      EXPECT_TRUE(in_shard.count((*same)[k])) << "partner drawn outside the shard";
    }
  }
}

TEST(PairSamplerTest, OtherClassPartnersHaveAnotherLabel) {
  std::vector<int64_t> labels = RandomLabels(300, 4, 2);
  auto pairs = PairSampler::Create(labels, 4);
  ASSERT_TRUE(pairs.ok());
  std::vector<int64_t> shard(100);
  std::iota(shard.begin(), shard.end(), 50);
  pairs->SetShard(shard);
  std::vector<int64_t> batch = {50, 60, 70, 80, 90, 51, 52, 53};
  auto other = pairs->OtherClass(batch, {1, 0, 0, 0});
  ASSERT_TRUE(other.ok());
  for (size_t k = 0; k < batch.size(); ++k) {
    EXPECT_NE(labels[static_cast<size_t>((*other)[k])], labels[static_cast<size_t>(batch[k])]);
    EXPECT_GE((*other)[k], 50);
    EXPECT_LT((*other)[k], 150);
  }
}

TEST(PairSamplerTest, DrawsAreDeterministicPerKey) {
  std::vector<int64_t> labels = RandomLabels(200, 3, 3);
  auto pairs = PairSampler::Create(labels, 3);
  ASSERT_TRUE(pairs.ok());
  std::vector<int64_t> batch(32);
  std::iota(batch.begin(), batch.end(), 0);
  DrawKey key{7, 2, 3, 0};
  EXPECT_EQ(*pairs->SameClass(batch, key), *pairs->SameClass(batch, key));
  EXPECT_EQ(*pairs->OtherClass(batch, key), *pairs->OtherClass(batch, key));
  DrawKey next = key;
  next.step = 4;
  EXPECT_NE(*pairs->SameClass(batch, key), *pairs->SameClass(batch, next));
  DrawKey rank1 = key;
  rank1.rank = 1;
  EXPECT_NE(*pairs->OtherClass(batch, key), *pairs->OtherClass(batch, rank1));
  // A copy made by another "run" gives the same draws.
  auto again = PairSampler::Create(labels, 3);
  EXPECT_EQ(*pairs->SameClass(batch, key), *again->SameClass(batch, key));
}

TEST(PairSamplerTest, FallsBackToWholeSetWhenShardLacksPartners) {
  // Class 1 has two members, 0 and 5; the shard holds only item 0.
  std::vector<int64_t> labels = {1, 0, 0, 0, 0, 1, 2};
  auto pairs = PairSampler::Create(labels, 3);
  ASSERT_TRUE(pairs.ok());
  pairs->SetShard({0, 1, 2});
  auto same = pairs->SameClass({0, 1}, {1, 0, 0, 0});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ((*same)[0], 5);
  EXPECT_EQ(labels[static_cast<size_t>((*same)[1])], 0);
  EXPECT_NE((*same)[1], 1);
  // A class with one member in the whole set pairs with itself.
  EXPECT_EQ((*pairs->SameClass({6}, {1, 0, 0, 0}))[0], 6);
  // The shard {1, 2} has only class 0: other-class draws use the whole set.
  pairs->SetShard({1, 2});
  auto other = pairs->OtherClass({1}, {1, 0, 0, 0});
  ASSERT_TRUE(other.ok());
  EXPECT_NE(labels[static_cast<size_t>((*other)[0])], 0);
}

TEST(PairSamplerTest, ErrorsForImpossibleRequests) {
  auto single_class = PairSampler::Create({0, 0, 0}, 2);
  ASSERT_TRUE(single_class.ok());
  EXPECT_EQ(single_class->NumClassesPresent(), 1);
  EXPECT_EQ(single_class->OtherClass({0}, {}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(single_class->SameClass({3}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PairSampler::Create({0, 2}, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dfv::data
