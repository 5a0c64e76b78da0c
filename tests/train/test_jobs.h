// Small jobs on the procedural sprites set, shared by the training tests.
#ifndef DFV_TESTS_TRAIN_TEST_JOBS_H_
#define DFV_TESTS_TRAIN_TEST_JOBS_H_

#include <map>
#include <string>
#include <vector>

#include "common/jobspec/job_spec.h"
#include "worker/data/batch_loader.h"
#include "worker/models/model.h"

namespace dfv::testing {

// Parses `yaml` as a job file; fails the current test on error.
jobspec::JobSpec ParseOrDie(const std::string& yaml);

// A fast job for `model`: sprites at `image_size` x `image_size` with
// `channels` channels, a few hundred images, one thread.
jobspec::JobSpec SmallSpritesJob(const std::string& model, int image_size = 28, int channels = 3,
                                 int max_steps = 40);

// A batch of `n` random images (channels x size x size, values in [0, 1])
// with every field a model may read: labels i % 4, indices i, same-class
// and other-class images, other labels (i + 1) % 4.
// What models::CreateModel needs to build `spec`'s model for the small
// sprites jobs (3 channels, 28 pixels); `spec` must outlive the context.
models::ModelContext SpritesModelContext(const jobspec::JobSpec& spec, int64_t num_classes = 30,
                                         int64_t train_size = 0);

data::Batch RandomBatch(int64_t n, int channels, int size);

// A fresh, empty folder under the test temp dir.
std::string FreshDir(const std::string& name);

// A run's metrics.csv as {column -> values}; fails the current test on a
// file it cannot read or a cell that is not a number.
std::map<std::string, std::vector<double>> ReadMetricsCsv(const std::string& path);

}  // namespace dfv::testing

#endif  // DFV_TESTS_TRAIN_TEST_JOBS_H_
