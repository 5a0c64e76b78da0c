#include "common/malloc_tuning.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace dfv {
namespace {

constexpr size_t kBlock = size_t{16} << 20;  // above glibc's default mmap threshold

// Allocates, touches and returns a block the compiler cannot elide.
void* TouchedBlock() {
  void* block = std::malloc(kBlock);
  if (block != nullptr) {
    std::memset(block, 1, kBlock);
    volatile char last = static_cast<volatile char*>(block)[kBlock - 1];
    (void)last;
  }
  return block;
}

TEST(MallocTuningTest, ABlockComesFromTheHeapAndIsKeptThereWhenFreed) {
  ASSERT_TRUE(KeepFreedMemoryInHeap(size_t{64} << 20, size_t{1} << 30).ok());
  const struct mallinfo2 before = mallinfo2();
  void* block = TouchedBlock();
  ASSERT_NE(block, nullptr);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_EQ(during.hblkhd, before.hblkhd) << "the block was mmapped";
  std::free(block);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_GE(after.fordblks, kBlock) << "the freed block was returned to the kernel";
  // The next block of that size reuses the kept memory: the heap does not grow.
  void* again = TouchedBlock();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(mallinfo2().arena, after.arena);
  EXPECT_EQ(mallinfo2().hblkhd, before.hblkhd);
  std::free(again);
}

TEST(MallocTuningTest, AThresholdMalloptCannotTakeIsAnError) {
  for (auto [mmap, trim] : {std::pair{size_t{1} << 40, size_t{1} << 20}, std::pair{size_t{1} << 20, size_t{1} << 40}}) {
    absl::Status too_large = KeepFreedMemoryInHeap(mmap, trim);
    EXPECT_EQ(too_large.code(), absl::StatusCode::kInvalidArgument) << too_large;
    EXPECT_NE(too_large.message().find("1099511627776"), absl::string_view::npos) << too_large;
  }
}

}  // namespace
}  // namespace dfv
