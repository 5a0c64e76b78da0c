#include "worker/train/latent_eval.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/raster.h"
#include "common/status_macros.h"

namespace dfv::train {
namespace {

// Predictions are made in chunks so that many classes do not need an
// [N, classes] tensor for the whole set at once.
constexpr int64_t kPredictChunk = 8192;
// Both probes decay the learning rate linearly to this fraction of its start,
// so the last epochs settle instead of bouncing around the optimum.
constexpr double kFinalLearningRateFraction = 0.05;

absl::Status CheckCodesAndLabels(const torch::Tensor& codes, const torch::Tensor& labels,
                                 const std::string& what, int64_t min_rows) {
  if (!codes.defined() || !labels.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": undefined tensor"));
  }
  if (codes.dim() != 2 || !codes.is_floating_point()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " codes must be a 2-D floating tensor [N, D], got ", codes.dim(), "-D ",
                     std::string(c10::toString(codes.scalar_type()))));
  }
  if (labels.dim() != 1 || labels.is_floating_point() || labels.is_complex() ||
      labels.scalar_type() == torch::kBool) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " labels must be a 1-D integer tensor [N]"));
  }
  if (labels.size(0) != codes.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", codes.size(0), " codes but ",
                                                   labels.size(0), " labels"));
  }
  if (codes.size(0) < min_rows) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": need at least ", min_rows, " codes, got ", codes.size(0)));
  }
  if (codes.size(1) < 1) return absl::InvalidArgumentError(absl::StrCat(what, ": codes have D = 0"));
  return absl::OkStatus();
}

absl::Status CheckLabelRange(const torch::Tensor& labels, int64_t num_classes,
                             const std::string& what) {
  const int64_t lo = labels.min().item<int64_t>();
  const int64_t hi = labels.max().item<int64_t>();
  if (lo < 0 || hi >= num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(what, " labels span [", lo, ", ", hi,
                                                   "], outside [0, ", num_classes, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckProbeOptions(const ProbeOptions& options) {
  if (options.classifiers.empty()) return absl::InvalidArgumentError("no classifiers requested");
  for (const std::string& name : options.classifiers) {
    if (name != kMlpProbe && name != kLinearSvmProbe) {
      return absl::InvalidArgumentError(absl::StrCat("unknown classifier \"", name,
                                                     "\" (expected mlp or linear_svm)"));
    }
  }
  if (options.mlp_hidden < 1 || options.mlp_epochs < 0 || options.mlp_batch_size < 2 ||
      !(options.mlp_learning_rate > 0) || options.svm_epochs < 0 || options.svm_batch_size < 1 ||
      !(options.svm_learning_rate > 0) || !(options.svm_l2 >= 0)) {
    return absl::InvalidArgumentError("probe options out of range");
  }
  return absl::OkStatus();
}

// Minibatch Adam over shuffled data for a fixed number of epochs, with the
// learning rate decayed linearly from `learning_rate` to
// kFinalLearningRateFraction of it. Batches of one are skipped because
// BatchNorm cannot normalise them in training mode.
void TrainMinibatches(const std::vector<torch::Tensor>& parameters,
                      const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& loss_fn,
                      const torch::Tensor& x, const torch::Tensor& y, int64_t epochs,
                      int64_t batch_size, double learning_rate) {
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(learning_rate));
  const int64_t n = x.size(0);
  const int64_t batches_per_epoch = (n + batch_size - 1) / batch_size;
  const double total_steps = static_cast<double>(std::max<int64_t>(1, epochs * batches_per_epoch));
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    const torch::Tensor order = torch::randperm(n, torch::kLong);
    for (int64_t begin = 0; begin < n; begin += batch_size) {
      const int64_t end = std::min(n, begin + batch_size);
      const double lr =
          learning_rate * (1.0 - (1.0 - kFinalLearningRateFraction) * (step++ / total_steps));
      if (end - begin < 2) continue;
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      }
      const torch::Tensor index = order.slice(0, begin, end);
      optimizer.zero_grad();
      torch::Tensor loss = loss_fn(x.index_select(0, index), y.index_select(0, index));
      loss.backward();
      optimizer.step();
    }
  }
}

torch::Tensor PredictInChunks(const std::function<torch::Tensor(const torch::Tensor&)>& scores,
                              const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < x.size(0); begin += kPredictChunk) {
    const int64_t end = std::min(x.size(0), begin + kPredictChunk);
    parts.push_back(scores(x.slice(0, begin, end)).argmax(1));
  }
  return torch::cat(parts);
}

ProbeScores Score(const torch::Tensor& train_pred, const torch::Tensor& train_y,
                  const torch::Tensor& test_pred, const torch::Tensor& test_y,
                  int64_t num_classes) {
  ProbeScores s;
  s.train_accuracy = train_pred.eq(train_y).to(torch::kDouble).mean().item<double>();
  s.test_accuracy = test_pred.eq(test_y).to(torch::kDouble).mean().item<double>();
  s.train_macro_f1 = MacroF1(train_pred, train_y, num_classes);
  s.test_macro_f1 = MacroF1(test_pred, test_y, num_classes);
  return s;
}

// Seed 002's MLP: two hidden layers of `hidden` with batch norm and
// LeakyReLU(0.2); the probes and the code predictors share it.
torch::nn::Sequential MakeMlp(int64_t inputs, int64_t hidden, int64_t outputs) {
  const auto leaky = torch::nn::LeakyReLUOptions().negative_slope(0.2);
  return torch::nn::Sequential(torch::nn::Linear(inputs, hidden), torch::nn::BatchNorm1d(hidden),
                               torch::nn::LeakyReLU(leaky), torch::nn::Linear(hidden, hidden),
                               torch::nn::BatchNorm1d(hidden), torch::nn::LeakyReLU(leaky),
                               torch::nn::Linear(hidden, outputs));
}

// Standardises by the columns' mean and population std over `reference`; a
// constant column becomes all zeros rather than NaN.
struct Standardiser {
  explicit Standardiser(const torch::Tensor& reference)
      : mean(reference.mean(0, /*keepdim=*/true)),
        stddev((reference - mean).pow(2).mean(0, /*keepdim=*/true).sqrt().clamp_min(1e-8)) {}
  torch::Tensor Apply(const torch::Tensor& x) const { return (x - mean) / stddev; }
  torch::Tensor Invert(const torch::Tensor& x) const { return x * stddev + mean; }
  torch::Tensor mean;
  torch::Tensor stddev;
};

ProbeScores ProbeMlp(const torch::Tensor& train_x, const torch::Tensor& train_y,
                     const torch::Tensor& test_x, const torch::Tensor& test_y, int64_t num_classes,
                     const ProbeOptions& options) {
  torch::nn::Sequential net = MakeMlp(train_x.size(1), options.mlp_hidden, num_classes);
  net->train();
  TrainMinibatches(
      net->parameters(),
      [&](const torch::Tensor& x, const torch::Tensor& y) {
        return torch::nn::functional::cross_entropy(net->forward(x), y);
      },
      train_x, train_y, options.mlp_epochs, options.mlp_batch_size, options.mlp_learning_rate);
  net->eval();
  auto scores = [&](const torch::Tensor& x) { return net->forward(x); };
  return Score(PredictInChunks(scores, train_x), train_y, PredictInChunks(scores, test_x), test_y,
               num_classes);
}

ProbeScores ProbeLinearSvm(const torch::Tensor& train_x, const torch::Tensor& train_y,
                           const torch::Tensor& test_x, const torch::Tensor& test_y,
                           int64_t num_classes, const ProbeOptions& options) {
  const int64_t d = train_x.size(1);
  // Zero start: the objective is convex, so no random initialisation is needed.
  torch::Tensor w = torch::zeros({d, num_classes}, torch::kFloat32).requires_grad_(true);
  torch::Tensor b = torch::zeros({num_classes}, torch::kFloat32).requires_grad_(true);
  const double l2 = options.svm_l2;
  TrainMinibatches(
      {w, b},
      [&](const torch::Tensor& x, const torch::Tensor& y) {
        const torch::Tensor sign =
            torch::full({x.size(0), num_classes}, -1.0f, torch::kFloat32)
                .scatter_(1, y.unsqueeze(1), 1.0);
        const torch::Tensor margins = (1 - sign * torch::addmm(b, x, w)).clamp_min(0);
        return margins.pow(2).sum(1).mean() + 0.5 * l2 * w.pow(2).sum();
      },
      train_x, train_y, options.svm_epochs, options.svm_batch_size, options.svm_learning_rate);
  auto scores = [&](const torch::Tensor& x) { return torch::addmm(b, x, w); };
  return Score(PredictInChunks(scores, train_x), train_y, PredictInChunks(scores, test_x), test_y,
               num_classes);
}

absl::StatusOr<ProbeReport> ProbeLatentUnsafe(const torch::Tensor& train_codes,
                                              const torch::Tensor& train_labels,
                                              const torch::Tensor& test_codes,
                                              const torch::Tensor& test_labels,
                                              int64_t num_classes, const ProbeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  DFV_RETURN_IF_ERROR(CheckProbeOptions(options));
  if (num_classes < 2) {
    return absl::InvalidArgumentError(absl::StrCat("num_classes must be >= 2, got ", num_classes));
  }
  DFV_RETURN_IF_ERROR(CheckCodesAndLabels(train_codes, train_labels, "train", 2));
  DFV_RETURN_IF_ERROR(CheckCodesAndLabels(test_codes, test_labels, "test", 1));
  if (train_codes.size(1) != test_codes.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat("train codes have D = ", train_codes.size(1),
                                                   ", test codes D = ", test_codes.size(1)));
  }
  torch::Tensor train_x = train_codes.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  torch::Tensor test_x = test_codes.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  torch::Tensor train_y = train_labels.detach().to(torch::kCPU, torch::kLong).contiguous();
  torch::Tensor test_y = test_labels.detach().to(torch::kCPU, torch::kLong).contiguous();
  DFV_RETURN_IF_ERROR(CheckLabelRange(train_y, num_classes, "train"));
  DFV_RETURN_IF_ERROR(CheckLabelRange(test_y, num_classes, "test"));
  if (!torch::isfinite(train_x).all().item<bool>() || !torch::isfinite(test_x).all().item<bool>()) {
    return absl::InvalidArgumentError("codes contain NaN or infinity");
  }

  // The caller may be inside a NoGradGuard (the evaluation is); the probes
  // train, so they need autograd whatever the caller's mode.
  torch::AutoGradMode enable_grad(true);
  torch::manual_seed(options.seed);

  ProbeReport report;
  report.train_codes_given = train_x.size(0);
  report.test_codes = test_x.size(0);
  if (options.max_train_codes > 0 && train_x.size(0) > options.max_train_codes) {
    const torch::Tensor keep =
        torch::randperm(train_x.size(0), torch::kLong).slice(0, 0, options.max_train_codes);
    train_x = train_x.index_select(0, keep);
    train_y = train_y.index_select(0, keep);
  }
  report.train_codes_used = train_x.size(0);
  report.chance = ChanceOf(test_y, num_classes);

  const Standardiser standardise(train_x);
  train_x = standardise.Apply(train_x);
  test_x = standardise.Apply(test_x);

  for (const std::string& name : options.classifiers) {
    if (report.scores.count(name)) continue;
    report.scores[name] =
        name == kMlpProbe
            ? ProbeMlp(train_x, train_y, test_x, test_y, num_classes, options)
            : ProbeLinearSvm(train_x, train_y, test_x, test_y, num_classes, options);
  }
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

absl::Status CheckRegressionInputs(const torch::Tensor& inputs, const torch::Tensor& targets,
                                   const std::string& what, int64_t min_rows) {
  for (const torch::Tensor* t : {&inputs, &targets}) {
    if (!t->defined() || t->dim() != 2 || !t->is_floating_point() || t->size(1) < 1) {
      return absl::InvalidArgumentError(absl::StrCat(what, " inputs and targets must be 2-D floating tensors"));
    }
  }
  if (inputs.size(0) != targets.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", inputs.size(0), " inputs but ", targets.size(0), " targets"));
  }
  if (inputs.size(0) < min_rows) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": need at least ", min_rows, " rows"));
  }
  if (!torch::isfinite(inputs).all().item<bool>() || !torch::isfinite(targets).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " codes contain NaN or infinity"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CodePrediction> PredictCodeUnsafe(const torch::Tensor& train_inputs,
                                                 const torch::Tensor& train_targets,
                                                 const torch::Tensor& test_inputs,
                                                 const torch::Tensor& test_targets,
                                                 const RegressorOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.hidden < 1 || options.epochs < 0 || options.batch_size < 2 || !(options.learning_rate > 0)) {
    return absl::InvalidArgumentError("regressor options out of range");
  }
  DFV_RETURN_IF_ERROR(CheckRegressionInputs(train_inputs, train_targets, "train", 2));
  DFV_RETURN_IF_ERROR(CheckRegressionInputs(test_inputs, test_targets, "test", 1));
  if (train_inputs.size(1) != test_inputs.size(1) || train_targets.size(1) != test_targets.size(1)) {
    return absl::InvalidArgumentError("train and test codes differ in dimension");
  }
  auto cpu = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat32).contiguous(); };
  const torch::Tensor train_x = cpu(train_inputs), train_t = cpu(train_targets);
  const torch::Tensor test_x = cpu(test_inputs), test_t = cpu(test_targets);

  torch::AutoGradMode enable_grad(true);
  torch::manual_seed(options.seed);
  const Standardiser in(train_x), out(train_t);
  torch::nn::Sequential net = MakeMlp(train_x.size(1), options.hidden, train_t.size(1));
  net->train();
  TrainMinibatches(
      net->parameters(),
      [&](const torch::Tensor& x, const torch::Tensor& t) {
        return torch::nn::functional::mse_loss(net->forward(x), t);
      },
      in.Apply(train_x), out.Apply(train_t), options.epochs, options.batch_size, options.learning_rate);
  net->eval();

  CodePrediction result;
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    const torch::Tensor x = in.Apply(test_x);
    for (int64_t begin = 0; begin < x.size(0); begin += kPredictChunk) {
      parts.push_back(net->forward(x.slice(0, begin, std::min(x.size(0), begin + kPredictChunk))));
    }
    result.test_predictions = out.Invert(torch::cat(parts)).contiguous();
  }
  result.test_mse = (result.test_predictions - test_t).pow(2).mean().item<double>();
  result.baseline_mse = (out.mean - test_t).pow(2).mean().item<double>();
  result.train_codes = train_x.size(0);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// ---- t-SNE ----

// Deterministic across standard libraries (std::normal_distribution is not):
// Box-Muller on mt19937_64.
class Normal {
 public:
  explicit Normal(uint64_t seed) : rng_(seed) {}
  double Next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    constexpr double kTwoPi = 6.283185307179586;
    const double u1 = (static_cast<double>(rng_() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    const double u2 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;         // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(kTwoPi * u2);
    has_spare_ = true;
    return r * std::cos(kTwoPi * u2);
  }

 private:
  std::mt19937_64 rng_;
  bool has_spare_ = false;
  double spare_ = 0;
};

absl::Status CheckTsneOptions(const TsneOptions& o) {
  if (!(o.perplexity > 0) || o.iterations < 0 || o.exaggeration_iterations < 0 ||
      !(o.early_exaggeration > 0) || !(o.learning_rate > 0) || !(o.initial_momentum >= 0) ||
      !(o.initial_momentum < 1) || !(o.final_momentum >= 0) || !(o.final_momentum < 1) ||
      o.max_points < 1) {
    return absl::InvalidArgumentError("t-SNE options out of range");
  }
  return absl::OkStatus();
}

// Joint probabilities P (symmetrised, summing to 1), row-major N x N float,
// from squared distances with a per-point Gaussian bandwidth whose
// conditional distribution has the requested perplexity.
std::vector<float> JointProbabilities(const std::vector<double>& x, int64_t n, int64_t d,
                                      double perplexity) {
  std::vector<double> dist(n * n, 0.0);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* xi = &x[i * d];
    for (int64_t j = i + 1; j < n; ++j) {
      const double* xj = &x[j * d];
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += (xi[k] - xj[k]) * (xi[k] - xj[k]);
      dist[i * n + j] = dist[j * n + i] = s;
      total += 2 * s;
    }
  }
  // Scale to a mean of 1 so the search starts near the right bandwidth
  // whatever the units of the codes.
  const double mean = total / static_cast<double>(n * (n - 1));
  if (mean > 0) {
    for (double& v : dist) v /= mean;
  }

  const double target_entropy = std::log(perplexity);
  std::vector<double> cond(n * n, 0.0);
  std::vector<double> row(n);
  for (int64_t i = 0; i < n; ++i) {
    double* di = &dist[i * n];
    // Shifting by the nearest distance leaves the normalised row unchanged
    // and keeps its largest term at exp(0) = 1, so the sum never underflows.
    double nearest = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      if (j != i) nearest = std::min(nearest, di[j]);
    }
    double beta = 1, beta_lo = 0, beta_hi = std::numeric_limits<double>::infinity();
    double sum = 0;
    for (int iter = 0; iter < 200; ++iter) {
      sum = 0;
      double weighted = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (j == i) {
          row[j] = 0;
          continue;
        }
        const double shifted = di[j] - nearest;
        row[j] = std::exp(-beta * shifted);
        sum += row[j];
        weighted += shifted * row[j];
      }
      const double entropy = std::log(sum) + beta * weighted / sum;
      const double gap = entropy - target_entropy;
      if (std::abs(gap) < 1e-5) break;
      if (gap > 0) {  // too flat: narrow the Gaussian
        beta_lo = beta;
        beta = std::isinf(beta_hi) ? beta * 2 : (beta + beta_hi) / 2;
      } else {
        beta_hi = beta;
        beta = (beta + beta_lo) / 2;
      }
    }
    for (int64_t j = 0; j < n; ++j) cond[i * n + j] = row[j] / sum;
  }

  std::vector<float> p(n * n);
  const double norm = 2.0 * static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      // The floor (as sklearn's) keeps far pairs from dropping out entirely.
      p[i * n + j] =
          i == j ? 0.0f
                 : static_cast<float>(std::max((cond[i * n + j] + cond[j * n + i]) / norm, 1e-12));
    }
  }
  return p;
}

torch::Tensor TsneUnsafe(const std::vector<double>& x, int64_t n, int64_t d,
                         const TsneOptions& options) {
  const double perplexity =
      std::max(1.0, std::min(options.perplexity, static_cast<double>(n - 1) / 3.0));
  const std::vector<float> p = JointProbabilities(x, n, d, perplexity);

  std::vector<float> yx(n), yy(n);
  Normal normal(options.seed);
  for (int64_t i = 0; i < n; ++i) {
    yx[i] = static_cast<float>(1e-4 * normal.Next());
    yy[i] = static_cast<float>(1e-4 * normal.Next());
  }
  std::vector<float> ux(n, 0), uy(n, 0), gx(n, 1), gy(n, 1);  // updates, gains
  std::vector<float> ax(n), ay(n), rx(n), ry(n);  // attractive, repulsive sums

  constexpr int kLanes = 8;
  for (int64_t iter = 0; iter < options.iterations; ++iter) {
    const bool early = iter < options.exaggeration_iterations;
    const double exaggeration = early ? options.early_exaggeration : 1.0;
    const double momentum = early ? options.initial_momentum : options.final_momentum;

    // One pass over the pairs i < j: with num_ij = 1 / (1 + |y_i - y_j|^2)
    // and Z = sum_{i != j} num_ij, the gradient is
    //   4 * sum_j (P_ij - num_ij / Z) num_ij (y_i - y_j)
    // = 4 * (A_i - R_i / Z), A_i = sum_j P_ij num_ij (y_i - y_j),
    //                        R_i = sum_j num_ij^2 (y_i - y_j),
    // and P and num are symmetric, so each pair adds to row i and,
    // negated, to row j. Fixed lanes for row i let the compiler vectorise
    // without reassociating sums; restrict tells it the rows do not alias.
    std::fill(ax.begin(), ax.end(), 0.0f);
    std::fill(ay.begin(), ay.end(), 0.0f);
    std::fill(rx.begin(), rx.end(), 0.0f);
    std::fill(ry.begin(), ry.end(), 0.0f);
    float* __restrict ax_out = ax.data();
    float* __restrict ay_out = ay.data();
    float* __restrict rx_out = rx.data();
    float* __restrict ry_out = ry.data();
    const float* __restrict px = yx.data();
    const float* __restrict py = yy.data();
    double z = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float xi = px[i], yi = py[i];
      const float* __restrict prow = &p[i * n];
      std::array<float, kLanes> lz{}, lax{}, lay{}, lrx{}, lry{};
      int64_t j = i + 1;
      for (; j + kLanes <= n; j += kLanes) {
        for (int k = 0; k < kLanes; ++k) {
          const float dx = xi - px[j + k], dy = yi - py[j + k];
          const float num = 1.0f / (1.0f + dx * dx + dy * dy);
          const float pn = prow[j + k] * num;
          const float n2 = num * num;
          lz[k] += num;
          lax[k] += pn * dx;
          lay[k] += pn * dy;
          lrx[k] += n2 * dx;
          lry[k] += n2 * dy;
          ax_out[j + k] -= pn * dx;
          ay_out[j + k] -= pn * dy;
          rx_out[j + k] -= n2 * dx;
          ry_out[j + k] -= n2 * dy;
        }
      }
      for (; j < n; ++j) {
        const float dx = xi - px[j], dy = yi - py[j];
        const float num = 1.0f / (1.0f + dx * dx + dy * dy);
        const float pn = prow[j] * num;
        const float n2 = num * num;
        lz[0] += num;
        lax[0] += pn * dx;
        lay[0] += pn * dy;
        lrx[0] += n2 * dx;
        lry[0] += n2 * dy;
        ax_out[j] -= pn * dx;
        ay_out[j] -= pn * dy;
        rx_out[j] -= n2 * dx;
        ry_out[j] -= n2 * dy;
      }
      float sz = 0, sax = 0, say = 0, srx = 0, sry = 0;
      for (int k = 0; k < kLanes; ++k) {
        sz += lz[k];
        sax += lax[k];
        say += lay[k];
        srx += lrx[k];
        sry += lry[k];
      }
      z += 2.0 * sz;
      ax_out[i] += sax;
      ay_out[i] += say;
      rx_out[i] += srx;
      ry_out[i] += sry;
    }
    z = std::max(z, 1e-12);

    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float grad_x = static_cast<float>(4.0 * (exaggeration * ax[i] - rx[i] / z));
      const float grad_y = static_cast<float>(4.0 * (exaggeration * ay[i] - ry[i] / z));
      // Gains grow where the gradient keeps its direction against the last
      // step and shrink where it flips.
      gx[i] = (grad_x > 0) != (ux[i] > 0) ? gx[i] + 0.2f : std::max(gx[i] * 0.8f, 0.01f);
      gy[i] = (grad_y > 0) != (uy[i] > 0) ? gy[i] + 0.2f : std::max(gy[i] * 0.8f, 0.01f);
      ux[i] = static_cast<float>(momentum * ux[i] - options.learning_rate * gx[i] * grad_x);
      uy[i] = static_cast<float>(momentum * uy[i] - options.learning_rate * gy[i] * grad_y);
      yx[i] += ux[i];
      yy[i] += uy[i];
      mx += yx[i];
      my += yy[i];
    }
    mx /= static_cast<double>(n);
    my /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) {
      yx[i] -= static_cast<float>(mx);
      yy[i] -= static_cast<float>(my);
    }
  }

  torch::Tensor out = torch::empty({n, 2}, torch::kFloat32);
  auto acc = out.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) {
    acc[i][0] = yx[i];
    acc[i][1] = yy[i];
  }
  return out;
}

// ---- Scatter plot ----

std::array<uint8_t, 3> ClassColour(int64_t label, int64_t num_classes) {
  static constexpr std::array<std::array<uint8_t, 3>, 10> kTab10 = {{
      {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
      {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
  }};
  if (label < 0 || label >= num_classes) return {0, 0, 0};
  if (label < 10) return kTab10[label];
  // Golden-ratio steps spread any number of further hues around the circle.
  const double hue = std::fmod(0.1 + 0.6180339887498949 * static_cast<double>(label - 10), 1.0);
  const double s = 0.65, v = 0.85;
  const double h6 = hue * 6;
  const int sector = static_cast<int>(h6) % 6;
  const double f = h6 - std::floor(h6);
  const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r = v, g = t, b = p;
  switch (sector) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
  return {static_cast<uint8_t>(std::lround(r * 255)), static_cast<uint8_t>(std::lround(g * 255)),
          static_cast<uint8_t>(std::lround(b * 255))};
}

}  // namespace

nlohmann::json ProbeReportToJson(const ProbeReport& report) {
  nlohmann::json j;
  j["train_codes"] = report.train_codes_given;
  j["train_codes_used"] = report.train_codes_used;
  j["subsampled"] = report.train_codes_used < report.train_codes_given;
  j["test_codes"] = report.test_codes;
  j["seconds"] = report.seconds;
  j["chance"] = {{"majority", report.chance.majority}, {"uniform", report.chance.uniform}};
  for (const auto& [name, s] : report.scores) {
    j[name] = {{"train_accuracy", s.train_accuracy},
               {"test_accuracy", s.test_accuracy},
               {"train_macro_f1", s.train_macro_f1},
               {"test_macro_f1", s.test_macro_f1}};
  }
  return j;
}

absl::StatusOr<ProbeReport> ProbeLatent(const torch::Tensor& train_codes,
                                        const torch::Tensor& train_labels,
                                        const torch::Tensor& test_codes,
                                        const torch::Tensor& test_labels, int64_t num_classes,
                                        const ProbeOptions& options) {
  try {
    return ProbeLatentUnsafe(train_codes, train_labels, test_codes, test_labels, num_classes,
                             options);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("latent probe failed: ", e.what()));
  }
}

ChanceLevel ChanceOf(const torch::Tensor& labels, int64_t num_classes) {
  ChanceLevel chance;
  if (num_classes < 1 || !labels.defined() || labels.numel() == 0) return chance;
  const torch::Tensor counts = torch::bincount(labels.detach().reshape({-1}).to(torch::kCPU, torch::kLong));
  chance.majority = counts.max().item<double>() / static_cast<double>(labels.numel());
  chance.uniform = 1.0 / static_cast<double>(num_classes);
  return chance;
}

nlohmann::json CodePredictionToJson(const CodePrediction& prediction) {
  return {{"test_mse", prediction.test_mse},
          {"baseline_mse", prediction.baseline_mse},
          {"train_codes", prediction.train_codes},
          {"seconds", prediction.seconds}};
}

absl::StatusOr<CodePrediction> PredictCode(const torch::Tensor& train_inputs, const torch::Tensor& train_targets,
                                           const torch::Tensor& test_inputs, const torch::Tensor& test_targets,
                                           const RegressorOptions& options) {
  try {
    return PredictCodeUnsafe(train_inputs, train_targets, test_inputs, test_targets, options);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("code predictor failed: ", e.what()));
  }
}

double MacroF1(const torch::Tensor& predicted, const torch::Tensor& truth, int64_t num_classes) {
  try {
    if (!predicted.defined() || !truth.defined() || predicted.numel() != truth.numel() ||
        num_classes < 1) {
      return 0;
    }
    const torch::Tensor pred = predicted.detach().reshape({-1}).to(torch::kCPU, torch::kLong).contiguous();
    const torch::Tensor real = truth.detach().reshape({-1}).to(torch::kCPU, torch::kLong).contiguous();
    const int64_t* pp = pred.data_ptr<int64_t>();
    const int64_t* tp = real.data_ptr<int64_t>();
    std::vector<int64_t> tp_count(num_classes, 0), pred_count(num_classes, 0),
        true_count(num_classes, 0);
    for (int64_t i = 0; i < pred.numel(); ++i) {
      const bool pred_in = pp[i] >= 0 && pp[i] < num_classes;
      const bool true_in = tp[i] >= 0 && tp[i] < num_classes;
      if (pred_in) ++pred_count[pp[i]];
      if (true_in) ++true_count[tp[i]];
      if (pred_in && pp[i] == tp[i]) ++tp_count[pp[i]];
    }
    double sum = 0;
    int64_t counted = 0;
    for (int64_t c = 0; c < num_classes; ++c) {
      if (pred_count[c] == 0 && true_count[c] == 0) continue;
      // 2TP / (2TP + FP + FN) = 2TP / (predicted + true).
      sum += 2.0 * static_cast<double>(tp_count[c]) /
             static_cast<double>(pred_count[c] + true_count[c]);
      ++counted;
    }
    return counted == 0 ? 0.0 : sum / static_cast<double>(counted);
  } catch (const std::exception&) {
    return 0;
  }
}

absl::StatusOr<torch::Tensor> Tsne(const torch::Tensor& codes, const TsneOptions& options) {
  try {
    DFV_RETURN_IF_ERROR(CheckTsneOptions(options));
    if (!codes.defined() || codes.dim() != 2 || !codes.is_floating_point() || codes.size(1) < 1) {
      return absl::InvalidArgumentError("t-SNE input must be a 2-D floating tensor [N, D]");
    }
    const int64_t n = codes.size(0), d = codes.size(1);
    if (n > options.max_points) {
      return absl::InvalidArgumentError(
          absl::StrCat("t-SNE of ", n, " points exceeds max_points = ", options.max_points));
    }
    if (n <= 1) return torch::zeros({n, 2}, torch::kFloat32);
    const torch::Tensor x = codes.detach().to(torch::kCPU, torch::kDouble).contiguous();
    if (!torch::isfinite(x).all().item<bool>()) {
      return absl::InvalidArgumentError("t-SNE input contains NaN or infinity");
    }
    const double* data = x.data_ptr<double>();
    return TsneUnsafe(std::vector<double>(data, data + n * d), n, d, options);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("t-SNE failed: ", e.what()));
  }
}

Image8 ScatterPlot(const torch::Tensor& points, const torch::Tensor& labels, int64_t num_classes,
                   int size, const PlotLabels& text) {
  Image8 image;
  size = std::max(size, 16);
  image.width = image.height = size;
  image.channels = 3;
  image.pixels.assign(static_cast<size_t>(size) * size * 3, 255);
  // The plot area [left, right) x [top, bottom); a title and a legend take
  // their room from it.
  int top = 0, right = size;
  constexpr std::array<uint8_t, 3> kInk = {0, 0, 0};
  if (!text.title.empty()) {
    // Twice the font when it fits; otherwise once, cut to the width.
    const int scale = size >= 384 && TextWidth(text.title, 2) <= size - 16 ? 2 : 1;
    const int pad = 4 * scale;
    std::string title = text.title;
    const int max_chars = std::max(1, (size - 8 + 1) / kGlyphAdvance);
    if (TextWidth(title, scale) > size - 8 && static_cast<int>(title.size()) > max_chars) {
      title = title.substr(0, std::max(0, max_chars - 2)) + "..";
    }
    DrawText(image, std::max(0, (size - TextWidth(title, scale)) / 2), pad, title, kInk, scale);
    top = kGlyphHeight * scale + 2 * pad;
  }
  if (!text.class_names.empty()) {
    const int rows = static_cast<int>(text.class_names.size());
    // Twice the font when there is room for it, as in the title.
    const int scale = size >= 384 && rows * (kGlyphHeight + 3) * 2 <= size - top ? 2 : 1;
    const int row_height = (kGlyphHeight + 3) * scale;
    int widest = 0;
    for (const std::string& name : text.class_names) widest = std::max(widest, TextWidth(name, scale));
    const int swatch = kGlyphHeight * scale;
    const int legend_width = std::min(size / 2, swatch + 3 * scale + widest + 8 * scale);
    right = size - legend_width;
    const int legend_top = top + std::max(0, (size - top - rows * row_height) / 2);
    for (int c = 0; c < rows; ++c) {
      const int y = legend_top + c * row_height;
      FillRect(image, right, y, swatch, swatch, ClassColour(c, num_classes));
      DrawText(image, right + swatch + 3 * scale, y, text.class_names[c], kInk, scale);
    }
  }
  try {
    if (!points.defined() || !labels.defined() || points.dim() != 2 || points.size(1) != 2 ||
        labels.numel() != points.size(0)) {
      return image;
    }
    const torch::Tensor xy = points.detach().to(torch::kCPU, torch::kDouble).contiguous();
    const torch::Tensor lab = labels.detach().reshape({-1}).to(torch::kCPU, torch::kLong).contiguous();
    const int64_t n = xy.size(0);
    const double* pts = xy.data_ptr<double>();
    const int64_t* lp = lab.data_ptr<int64_t>();

    double min_x = std::numeric_limits<double>::infinity(), max_x = -min_x;
    double min_y = min_x, max_y = -min_x;
    for (int64_t i = 0; i < n; ++i) {
      const double x = pts[2 * i], y = pts[2 * i + 1];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      min_x = std::min(min_x, x), max_x = std::max(max_x, x);
      min_y = std::min(min_y, y), max_y = std::max(max_y, y);
    }
    if (!(min_x <= max_x)) return image;  // no finite point

    constexpr int kRadius = 2;
    const double width = right, height = size - top;
    const double margin = std::max(8.0, size / 32.0);
    const double span = std::max({max_x - min_x, max_y - min_y, 1e-12});
    const double scale = std::max(1.0, std::min(width, height) - 2 * margin) / span;
    const double mid_x = (min_x + max_x) / 2, mid_y = (min_y + max_y) / 2;
    const double centre_x = width / 2.0, centre_y = top + height / 2.0;

    // A fixed Fisher-Yates shuffle of the drawing order (mt19937 is specified
    // by the standard, so the picture is the same everywhere).
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    std::mt19937_64 rng(0x5eed);
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);

    for (int64_t i : order) {
      const double x = pts[2 * i], y = pts[2 * i + 1];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      const int cx = static_cast<int>(std::lround(centre_x + (x - mid_x) * scale));
      const int cy = static_cast<int>(std::lround(centre_y - (y - mid_y) * scale));  // y up
      const std::array<uint8_t, 3> colour = ClassColour(lp[i], num_classes);
      for (int dy = -kRadius; dy <= kRadius; ++dy) {
        for (int dx = -kRadius; dx <= kRadius; ++dx) {
          if (dx * dx + dy * dy > kRadius * kRadius + 1) continue;
          const int px = cx + dx, py = cy + dy;
          if (px < 0 || py < top || px >= right || py >= size) continue;
          uint8_t* out = &image.pixels[(static_cast<size_t>(py) * size + px) * 3];
          out[0] = colour[0];
          out[1] = colour[1];
          out[2] = colour[2];
        }
      }
    }
  } catch (const std::exception&) {
    return ScatterPlot(torch::Tensor(), torch::Tensor(), num_classes, size, text);
  }
  return image;
}

}  // namespace dfv::train
