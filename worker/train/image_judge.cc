#include "worker/train/image_judge.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/data/random.h"
#include "worker/data/tensor.h"

namespace dfv::train {
namespace {

constexpr int64_t kJudgeBatch = 500;  // images per forward pass when judging or scoring

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

struct ImageJudge::Net : torch::nn::Module {
  Net(int64_t channels, int64_t outputs) {
    const auto leaky = torch::nn::LeakyReLUOptions().negative_slope(0.2);
    layers = register_module(
        "layers",
        torch::nn::Sequential(
            torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 32, 4).stride(2).padding(1)),
            torch::nn::LeakyReLU(leaky),
            torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 4).stride(2).padding(1)), torch::nn::BatchNorm2d(64),
            torch::nn::LeakyReLU(leaky), torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(4)),
            torch::nn::Flatten(), torch::nn::Linear(64 * 16, 128), torch::nn::LeakyReLU(leaky),
            torch::nn::Linear(128, outputs)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }
  torch::nn::Sequential layers{nullptr};
};

ImageJudge::~ImageJudge() = default;

absl::StatusOr<std::unique_ptr<ImageJudge>> ImageJudge::Train(const data::ImageSet& train,
                                                              const std::vector<int64_t>& factor_columns,
                                                              const JudgeOptions& options, torch::Device device) {
  const auto start = std::chrono::steady_clock::now();
  for (int64_t c : factor_columns) {
    if (c < 0 || c >= train.NumFactors()) {
      return absl::InvalidArgumentError(absl::StrCat("the data set has no factor column ", c));
    }
  }
  if (train.size < 2 || train.num_classes < 1) {
    return absl::InvalidArgumentError("the judge needs at least two labelled training images");
  }
  if (options.epochs < 0 || options.batch_size < 2 || !(options.learning_rate > 0)) {
    return absl::InvalidArgumentError("judge options out of range");
  }
  std::unique_ptr<ImageJudge> judge(new ImageJudge());
  judge->factor_columns_ = factor_columns;
  judge->num_classes_ = train.num_classes;
  judge->device_ = device;
  std::vector<int64_t> indices = data::SeededPermutation(train.size, options.seed);
  if (options.max_train_images > 0 && static_cast<int64_t>(indices.size()) > options.max_train_images) {
    indices.resize(options.max_train_images);
  }
  judge->train_images_ = static_cast<int64_t>(indices.size());
  try {
    torch::AutoGradMode enable_grad(true);
    torch::manual_seed(options.seed);
    const int64_t f = static_cast<int64_t>(factor_columns.size());
    DFV_ASSIGN_OR_RETURN(torch::Tensor labels, data::LabelsToTensor(train, indices));
    torch::Tensor factors;
    if (f > 0) {
      DFV_ASSIGN_OR_RETURN(torch::Tensor all, data::FactorsToTensor(train, indices));
      factors = all.index_select(1, torch::tensor(factor_columns, torch::kLong));
      judge->factor_mean_ = factors.mean(0);
      judge->factor_std_ = (factors - judge->factor_mean_).pow(2).mean(0).sqrt().clamp_min(1e-8);
      factors = ((factors - judge->factor_mean_) / judge->factor_std_).to(device);
    }
    labels = labels.to(device);
    judge->net_ = std::make_unique<Net>(train.channels, train.num_classes + f);
    judge->net_->to(device);
    judge->net_->train();
    torch::optim::Adam optimizer(judge->net_->parameters(), torch::optim::AdamOptions(options.learning_rate));
    const int64_t n = judge->train_images_;
    for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
      const std::vector<int64_t> order = data::SeededPermutation(n, data::MixSeed({options.seed, 1, static_cast<uint64_t>(epoch)}));
      for (int64_t begin = 0; begin + 1 < n; begin += options.batch_size) {
        const int64_t end = std::min(n, begin + options.batch_size);
        if (end - begin < 2) break;  // batch norm needs two
        std::vector<int64_t> rows(order.begin() + begin, order.begin() + end);
        std::vector<int64_t> picked(rows.size());
        for (size_t i = 0; i < rows.size(); ++i) picked[i] = indices[rows[i]];
        DFV_ASSIGN_OR_RETURN(torch::Tensor x, data::ImagesToTensor(train, picked));
        const torch::Tensor row_index = torch::tensor(rows, torch::kLong).to(device);
        const torch::Tensor out = judge->net_->forward(x.to(device));
        torch::Tensor loss = torch::nn::functional::cross_entropy(out.slice(1, 0, train.num_classes),
                                                                   labels.index_select(0, row_index));
        if (f > 0) {
          loss = loss + torch::nn::functional::mse_loss(out.slice(1, train.num_classes),
                                                        factors.index_select(0, row_index));
        }
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
      }
    }
    judge->net_->eval();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training the image judge failed: ", e.what()));
  }
  judge->train_seconds_ = Seconds(start);
  return judge;
}

Judgement ImageJudge::Judge(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  net_->eval();
  const torch::Tensor out = net_->forward(images.to(device_)).to(torch::kCPU);
  Judgement j;
  j.classes = out.slice(1, 0, num_classes_).argmax(1);
  if (!factor_columns_.empty()) j.factors = out.slice(1, num_classes_) * factor_std_ + factor_mean_;
  return j;
}

absl::StatusOr<JudgeScores> ImageJudge::Score(const data::ImageSet& test) {
  const auto start = std::chrono::steady_clock::now();
  JudgeScores scores;
  scores.train_images = train_images_;
  try {
    int64_t correct = 0;
    const int64_t f = static_cast<int64_t>(factor_columns_.size());
    std::vector<torch::Tensor> predicted, truth;
    for (int64_t begin = 0; begin < test.size; begin += kJudgeBatch) {
      const std::vector<int64_t> idx = data::IndexRange(begin, std::min(test.size, begin + kJudgeBatch));
      DFV_ASSIGN_OR_RETURN(torch::Tensor x, data::ImagesToTensor(test, idx));
      DFV_ASSIGN_OR_RETURN(torch::Tensor y, data::LabelsToTensor(test, idx));
      const Judgement j = Judge(x);
      correct += j.classes.eq(y).sum().item<int64_t>();
      if (f > 0) {
        DFV_ASSIGN_OR_RETURN(torch::Tensor all, data::FactorsToTensor(test, idx));
        truth.push_back(all.index_select(1, torch::tensor(factor_columns_, torch::kLong)));
        predicted.push_back(j.factors);
      }
    }
    scores.test_accuracy = test.size > 0 ? static_cast<double>(correct) / static_cast<double>(test.size) : 0.0;
    if (f > 0 && test.size > 0) {
      const torch::Tensor t = torch::cat(truth), p = torch::cat(predicted);
      const torch::Tensor residual = (p - t).pow(2).sum(0);
      const torch::Tensor total = (t - t.mean(0)).pow(2).sum(0).clamp_min(1e-12);
      const torch::Tensor r2 = 1 - residual / total;
      for (int64_t c = 0; c < f; ++c) scores.factor_r2.push_back(r2[c].item<double>());
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("scoring the image judge failed: ", e.what()));
  }
  scores.seconds = train_seconds_ + Seconds(start);
  return scores;
}

nlohmann::json JudgeScoresToJson(const JudgeScores& scores, const std::vector<std::string>& factor_names) {
  nlohmann::json j;
  j["test_accuracy"] = scores.test_accuracy;
  j["train_images"] = scores.train_images;
  j["seconds"] = scores.seconds;
  if (!scores.factor_r2.empty()) {
    nlohmann::json r2 = nlohmann::json::object();
    for (size_t c = 0; c < scores.factor_r2.size(); ++c) {
      r2[c < factor_names.size() ? factor_names[c] : absl::StrCat("factor", c)] = scores.factor_r2[c];
    }
    j["factor_r2"] = r2;
  }
  return j;
}

}  // namespace dfv::train
