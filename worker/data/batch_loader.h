// BatchLoader: this rank's training batches as tensors, assembled ahead of
// time on a background thread. That thread only copies bytes into
// torch::empty tensors (no LibTorch kernel, so no intra-op thread team of its
// own): beside the trainer's intra-op threads it adds one mostly idle thread.
//
// Batch k (k = global step, counted from 0 across epochs) is a pure function
// of (set, seed, rank, world_size, batch_size, pairing flags, k): epoch
// k / StepsPerEpoch(), the EpochSampler slice for the step, and partners from
// a PairSampler keyed by (seed, epoch, step, rank). So a job resumed at step
// k with Seek(k) reads exactly the batches an uninterrupted run would have.
// The loader never runs out: it continues into later epochs until destroyed;
// the trainer decides when to stop.
#ifndef DFV_WORKER_DATA_BATCH_LOADER_H_
#define DFV_WORKER_DATA_BATCH_LOADER_H_

#include <torch/torch.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/data/image_set.h"
#include "worker/data/sampler.h"

namespace dfv::data {

struct LoaderOptions {
  // Items per step on this rank (the job's global batch / world_size); > 0.
  int64_t batch_size = 64;
  // Shuffling and pairing seed; must be the same on every rank.
  uint64_t seed = 1;
  // This rank and the number of ranks; each rank reads a disjoint shard.
  int rank = 0;
  int world_size = 1;
  // Also deliver a same-class partner for every item (Batch::same_images).
  bool same_class_pair = false;
  // Also deliver a different-class item for every item (Batch::other_*).
  bool other_class = false;
  // Batches assembled ahead of Next(); 1..1024. Memory: prefetch batches.
  int prefetch = 4;
};

struct Batch {
  torch::Tensor images;   // [B, C, H, W] float32 in [0, 1]
  torch::Tensor labels;   // [B] int64
  torch::Tensor indices;  // [B] int64 dataset indices of images
  // Same class as images, a different item (see PairSampler); defined only
  // with same_class_pair.
  torch::Tensor same_images;   // [B, C, H, W]
  torch::Tensor same_indices;  // [B]
  // An item of a different class; defined only with other_class.
  torch::Tensor other_images;   // [B, C, H, W]
  torch::Tensor other_labels;   // [B]
  torch::Tensor other_indices;  // [B]
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;
  int64_t global_step = 0;  // epoch * StepsPerEpoch() + step_in_epoch
};

// Thread-safety: Next, Seek and the accessors are meant for one consumer
// thread (the trainer); calling Next and Seek concurrently is not supported.
// The loader shares the ImageSet read-only and keeps it alive.
class BatchLoader {
 public:
  // INVALID_ARGUMENT for a null or inconsistent set or bad options;
  // FAILED_PRECONDITION when the set is smaller than one global batch, or
  // other_class is asked of a set with one class; RESOURCE_EXHAUSTED when the
  // thread cannot start. Starts prefetching at step 0.
  static absl::StatusOr<std::unique_ptr<BatchLoader>> Create(std::shared_ptr<const ImageSet> set,
                                                             const LoaderOptions& options);

  // Stops the background thread (waking it if it waits on a full queue) and
  // joins it. Never blocks on the consumer.
  ~BatchLoader();

  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // The batch for NextStep(), blocking until it is ready. A failure while
  // assembling (e.g. LibTorch out of memory) is returned here as a Status and
  // repeats on later calls until Seek.
  absl::StatusOr<Batch> Next();

  // Positions the loader so that the next Next() returns the batch of
  // `global_step` (negative means 0). Discards prefetched batches.
  void Seek(int64_t global_step);

  // The global step of the batch the next Next() returns.
  int64_t NextStep() const { return next_step_; }
  int64_t StepsPerEpoch() const { return sampler_.StepsPerEpoch(); }
  const LoaderOptions& options() const { return options_; }

 private:
  BatchLoader(std::shared_ptr<const ImageSet> set, const LoaderOptions& options, EpochSampler sampler,
              PairSampler pairs);

  // Starts the producer at `step`; the producer must not be running.
  void StartProducer(int64_t step);
  // Stops and joins the producer and clears the queue and any error.
  void StopProducer();
  // The producer thread's body.
  void Produce(int64_t step);
  // Builds batch `step`; runs on the producer thread and may throw (LibTorch),
  // which Produce turns into a Status.
  absl::StatusOr<Batch> Assemble(int64_t step);

  const std::shared_ptr<const ImageSet> set_;
  const LoaderOptions options_;
  const EpochSampler sampler_;

  // Owned by the producer thread while it runs (one producer at a time).
  PairSampler pairs_;
  int64_t shard_epoch_ = -1;
  std::vector<int64_t> shard_;

  // Consumer-side state.
  int64_t next_step_ = 0;
  std::thread producer_;

  absl::Mutex mu_;
  absl::CondVar not_empty_;  // signalled when a batch or an error arrives
  absl::CondVar not_full_;   // signalled when Next() frees a slot or on stop
  std::deque<Batch> queue_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);  // set by a failed producer
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_BATCH_LOADER_H_
