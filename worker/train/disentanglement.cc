#include "worker/train/disentanglement.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dfv::train {
namespace {

torch::Tensor CpuLong(const torch::Tensor& t) {
  return t.detach().reshape({-1}).to(torch::kCPU, torch::kLong).contiguous();
}

absl::StatusOr<torch::Tensor> DiscretiseUnsafe(const torch::Tensor& values, int64_t bins) {
  if (bins < 1) return absl::InvalidArgumentError(absl::StrCat("bins must be >= 1, got ", bins));
  if (!values.defined() || values.dim() != 2 || !values.is_floating_point()) {
    return absl::InvalidArgumentError("values to discretise must be a 2-D floating tensor [N, D]");
  }
  const torch::Tensor x = values.detach().to(torch::kCPU, torch::kDouble).contiguous();
  if (!torch::isfinite(x).all().item<bool>()) {
    return absl::InvalidArgumentError("values to discretise contain NaN or infinity");
  }
  const int64_t n = x.size(0), d = x.size(1);
  torch::Tensor out = torch::ones({n, d}, torch::kLong);
  if (n == 0) return out;
  const torch::Tensor lo = std::get<0>(x.min(0)), hi = std::get<0>(x.max(0));
  auto xa = x.accessor<double, 2>();
  auto oa = out.accessor<int64_t, 2>();
  for (int64_t j = 0; j < d; ++j) {
    const double min = lo[j].item<double>(), max = hi[j].item<double>();
    if (!(max > min)) continue;  // constant: one bin
    const double width = (max - min) / static_cast<double>(bins);
    for (int64_t i = 0; i < n; ++i) {
      // digitize(x, edges[:-1]) = the number of edges e_0..e_{bins-1} <= x.
      const int64_t bin = static_cast<int64_t>(std::floor((xa[i][j] - min) / width)) + 1;
      oa[i][j] = std::clamp<int64_t>(bin, 1, bins);
    }
  }
  return out;
}

// Maps arbitrary int64 values to 0..k-1.
std::vector<int64_t> Dense(const torch::Tensor& t, int64_t* distinct) {
  const int64_t* p = t.data_ptr<int64_t>();
  std::map<int64_t, int64_t> ids;
  std::vector<int64_t> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    auto [it, inserted] = ids.emplace(p[i], static_cast<int64_t>(ids.size()));
    out[i] = it->second;
  }
  *distinct = static_cast<int64_t>(ids.size());
  return out;
}

double MutualInformationUnsafe(const torch::Tensor& a_in, const torch::Tensor& b_in) {
  const torch::Tensor a = CpuLong(a_in), b = CpuLong(b_in);
  const int64_t n = std::min(a.numel(), b.numel());
  if (n == 0) return 0;
  int64_t ka = 0, kb = 0;
  const std::vector<int64_t> da = Dense(a, &ka), db = Dense(b, &kb);
  std::vector<double> joint(ka * kb, 0.0), pa(ka, 0.0), pb(kb, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    joint[da[i] * kb + db[i]] += 1;
    pa[da[i]] += 1;
    pb[db[i]] += 1;
  }
  // sum_ij p_ij log(p_ij / (p_i p_j)) with counts: (c_ij / n) log(c_ij n / (c_i c_j)).
  const double total = static_cast<double>(n);
  double mi = 0;
  for (int64_t i = 0; i < ka; ++i) {
    for (int64_t j = 0; j < kb; ++j) {
      const double c = joint[i * kb + j];
      if (c > 0) mi += c / total * std::log(c * total / (pa[i] * pb[j]));
    }
  }
  return std::max(mi, 0.0);
}

absl::StatusOr<MigResult> MigUnsafe(const torch::Tensor& codes, const torch::Tensor& factors, int64_t bins) {
  if (!codes.defined() || !factors.defined() || codes.dim() != 2 || factors.dim() != 2 ||
      factors.is_floating_point() || codes.size(0) != factors.size(0)) {
    return absl::InvalidArgumentError(
        "MIG needs codes [N, D] (floating) and integer factors [N, K] with the same N");
  }
  if (codes.size(1) < 2) return absl::InvalidArgumentError("MIG needs at least 2 code dimensions");
  if (codes.size(0) < 2) return absl::InvalidArgumentError("MIG needs at least 2 samples");
  DFV_ASSIGN_OR_RETURN(torch::Tensor discrete, DiscretiseUnsafe(codes, bins));
  const torch::Tensor f = factors.detach().to(torch::kCPU, torch::kLong).contiguous();
  const int64_t d = discrete.size(1), k = f.size(1);
  std::vector<torch::Tensor> code_columns, factor_columns;
  for (int64_t j = 0; j < d; ++j) code_columns.push_back(discrete.select(1, j).contiguous());
  for (int64_t j = 0; j < k; ++j) factor_columns.push_back(f.select(1, j).contiguous());

  MigResult result;
  result.samples = codes.size(0);
  double sum = 0;
  int64_t counted = 0;
  for (int64_t j = 0; j < k; ++j) {
    std::vector<double> mi(d);
    for (int64_t c = 0; c < d; ++c) mi[c] = MutualInformationUnsafe(code_columns[c], factor_columns[j]);
    const double entropy = MutualInformationUnsafe(factor_columns[j], factor_columns[j]);
    std::vector<int64_t> order(d);
    for (int64_t c = 0; c < d; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return mi[x] > mi[y]; });
    const double gap = entropy > 0 ? (mi[order[0]] - mi[order[1]]) / entropy : 0.0;
    result.factor_gaps.push_back(gap);
    result.factor_top_code.push_back(order[0]);
    result.factor_entropy.push_back(entropy);
    if (entropy > 0) {
      sum += gap;
      ++counted;
    }
  }
  result.mig = counted > 0 ? sum / static_cast<double>(counted) : 0.0;
  return result;
}

absl::StatusOr<SwapScores> SwapUnsafe(const torch::Tensor& s_codes, const torch::Tensor& z_codes,
                                      const torch::Tensor& labels,
                                      const std::pair<torch::Tensor, torch::Tensor>& pairs,
                                      const DecodeFn& decode, const JudgeFn& judge, int64_t num_classes,
                                      const torch::Tensor& factor_values, int64_t batch) {
  if (!s_codes.defined() || !z_codes.defined() || !labels.defined() || s_codes.dim() != 2 ||
      z_codes.dim() != 2 || s_codes.size(0) != z_codes.size(0) || labels.numel() != s_codes.size(0)) {
    return absl::InvalidArgumentError("swap consistency needs s [N, Ds], z [N, Dz] and labels [N]");
  }
  const torch::Tensor a = CpuLong(pairs.first), b = CpuLong(pairs.second);
  if (a.numel() == 0 || a.numel() != b.numel()) {
    return absl::InvalidArgumentError("swap consistency needs a non-empty list of pairs");
  }
  if (num_classes < 1 || batch < 1) return absl::InvalidArgumentError("num_classes and batch must be >= 1");
  const bool with_factors = factor_values.defined();
  if (with_factors && (factor_values.dim() != 2 || factor_values.size(0) != s_codes.size(0))) {
    return absl::InvalidArgumentError("factor values must be [N, F] for the same N images");
  }
  const torch::Tensor y = CpuLong(labels);
  const torch::Tensor truth = with_factors ? factor_values.detach().to(torch::kCPU, torch::kFloat32) : torch::Tensor();
  const int64_t m = a.numel();
  int64_t b_hits = 0, a_hits = 0;
  std::vector<double> kept;
  for (int64_t begin = 0; begin < m; begin += batch) {
    const int64_t end = std::min(m, begin + batch);
    const torch::Tensor ia = a.slice(0, begin, end), ib = b.slice(0, begin, end);
    const torch::Tensor s = s_codes.index_select(0, ib.to(s_codes.device()));
    const torch::Tensor z = z_codes.index_select(0, ia.to(z_codes.device()));
    const Judgement j = judge(decode(s, z));
    const torch::Tensor predicted = CpuLong(j.classes);
    if (predicted.numel() != end - begin) return absl::InternalError("the judge returned the wrong number of classes");
    b_hits += predicted.eq(y.index_select(0, ib)).sum().item<int64_t>();
    a_hits += predicted.eq(y.index_select(0, ia)).sum().item<int64_t>();
    if (with_factors && j.factors.defined()) {
      const torch::Tensor p = j.factors.detach().to(torch::kCPU, torch::kFloat32);
      if (p.dim() != 2 || p.size(0) != end - begin || p.size(1) != truth.size(1)) {
        return absl::InternalError("the judge's factor predictions do not match the factor values");
      }
      const torch::Tensor da = (p - truth.index_select(0, ia)).abs();
      const torch::Tensor db = (p - truth.index_select(0, ib)).abs();
      // Nearer a: 1, tie: 1/2, nearer b: 0.
      const torch::Tensor score = da.lt(db).to(torch::kDouble) + 0.5 * da.eq(db).to(torch::kDouble);
      const torch::Tensor sums = score.sum(0);
      if (kept.empty()) kept.assign(p.size(1), 0.0);
      for (int64_t f = 0; f < p.size(1); ++f) kept[f] += sums[f].item<double>();
    }
  }
  SwapScores scores;
  scores.pairs = m;
  scores.b_class_rate = static_cast<double>(b_hits) / static_cast<double>(m);
  scores.a_class_rate = static_cast<double>(a_hits) / static_cast<double>(m);
  scores.chance = 1.0 / static_cast<double>(num_classes);
  for (double k : kept) scores.factor_kept_rates.push_back(k / static_cast<double>(m));
  return scores;
}

}  // namespace

absl::StatusOr<torch::Tensor> HistogramDiscretise(const torch::Tensor& values, int64_t bins) {
  try {
    return DiscretiseUnsafe(values, bins);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("discretisation failed: ", e.what()));
  }
}

double DiscreteMutualInformation(const torch::Tensor& a, const torch::Tensor& b) {
  try {
    return MutualInformationUnsafe(a, b);
  } catch (const std::exception&) {
    return 0;
  }
}

absl::StatusOr<MigResult> MutualInformationGap(const torch::Tensor& codes, const torch::Tensor& factors,
                                               int64_t bins) {
  try {
    return MigUnsafe(codes, factors, bins);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("MIG failed: ", e.what()));
  }
}

nlohmann::json MigResultToJson(const MigResult& result, const std::vector<std::string>& factor_names,
                               int64_t bins) {
  nlohmann::json j;
  j["mig"] = result.mig;
  j["samples"] = result.samples;
  j["bins"] = bins;
  nlohmann::json factors = nlohmann::json::object();
  const bool named = factor_names.size() == result.factor_gaps.size();
  for (size_t f = 0; f < result.factor_gaps.size(); ++f) {
    factors[named ? factor_names[f] : absl::StrCat("factor", f)] = {
        {"gap", result.factor_gaps[f]},
        {"top_code", result.factor_top_code[f]},
        {"entropy", result.factor_entropy[f]}};
  }
  j["factors"] = factors;
  return j;
}

std::pair<torch::Tensor, torch::Tensor> DifferentClassPairs(const torch::Tensor& labels, int64_t count,
                                                            uint64_t seed) {
  const torch::Tensor y = CpuLong(labels);
  const int64_t n = y.numel();
  const int64_t* p = y.data_ptr<int64_t>();
  std::mt19937_64 rng(seed);
  std::vector<int64_t> a, b;
  // Rejection sampling: cheap unless one class holds almost every image, and
  // bounded so a set of one class ends instead of looping.
  for (int64_t i = 0; i < std::min(count, n); ++i) {
    for (int tries = 0; tries < 1000; ++tries) {
      const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
      if (p[j] != p[i]) {
        a.push_back(i);
        b.push_back(j);
        break;
      }
    }
  }
  return {torch::tensor(a, torch::kLong), torch::tensor(b, torch::kLong)};
}

absl::StatusOr<SwapScores> SwapConsistency(const torch::Tensor& s_codes, const torch::Tensor& z_codes,
                                           const torch::Tensor& labels,
                                           const std::pair<torch::Tensor, torch::Tensor>& pairs,
                                           const DecodeFn& decode, const JudgeFn& judge, int64_t num_classes,
                                           const torch::Tensor& factor_values, int64_t batch) {
  try {
    return SwapUnsafe(s_codes, z_codes, labels, pairs, decode, judge, num_classes, factor_values, batch);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("swap consistency failed: ", e.what()));
  }
}

}  // namespace dfv::train
