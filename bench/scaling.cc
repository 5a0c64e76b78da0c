// dfv_bench_scaling: samples/s of data-parallel training, 1 rank against N
// ranks (default 2), each rank a separate process with one torch thread, over
// shared memory (what the trainer uses when every rank is on one host) and
// over loopback Gloo.
//
// Configurations, each run `--rounds` times in turn (1, N shm on, ...):
//   1 rank      one process, global batch G (--batch, default 64), no reducer;
//   N ranks, T, on   N processes, G/N each, talking over transport T (shm,
//               gloo: --transports), GradientReducer with overlap on
//               (buckets launched from gradient hooks during backward);
//   N ranks, T, off  the same with overlap off (every bucket after backward);
//   N ranks, no all-reduce  N processes, G/N each, training side by side
//               without exchanging gradients: not data-parallel training,
//               the ceiling this machine puts on the ones above (cores,
//               caches and memory shared, smaller per-process batches).
// Each process builds the model as the trainer does (models::CreateModel with
// a ModelContext from the loaded data set, seed train.seed), reads its shard
// through data::BatchLoader (rank, world_size), and the ranks start from rank
// 0's parameters (BroadcastFromFirstRank). After --warmup steps (and a
// barrier) it times --steps steps: loader->Next, BeginStep, TrainStep.
// samples/s = G * steps / the slowest rank's wall time; speedup = the median
// over rounds of a round's samples/s over that round's 1-rank samples/s
// (paired, as the machine's speed drifts between rounds). The all-reduce share
// is GradientReducer::TakeBlockedSeconds() (time blocked waiting for
// gradient all-reduces) / the summed TrainStep time, averaged over ranks.
//
// Every process keeps freed memory in glibc's heap as dfv-trainer does
// (common/malloc_tuning.h); before it did, the 1-rank step here took 3x the
// trainer's (101 ms against about 32 ms for cycle_vae at batch 64).
//
// Model and data: cycle_vae (style/class dims 16, the main example's
// settings) on Fashion-MNIST 28x28 grey when /usr/share/datasets/fashion-mnist
// exists, else on procedural 28x28 grey sprites (--dataset to choose).
//
//   dfv_bench_scaling [--ranks 2] [--batch 64] [--steps 100] [--warmup 20]
//                     [--rounds 5] [--model cycle_vae] [--dataset auto]
//                     [--threads 1] [--baseline-threads T] [--bucket-mib 25]
//                     [--transports shm,gloo] [--json]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_format.h"
#include "bench/launch.h"
#include "common/jobspec/parse.h"
#include "common/malloc_tuning.h"
#include "worker/data/batch_loader.h"
#include "worker/data/dataset.h"
#include "worker/dist/reducer.h"
#include "worker/models/registry.h"

namespace {

using Clock = std::chrono::steady_clock;
using dfv::bench::Median;

constexpr char kFashionPath[] = "/usr/share/datasets/fashion-mnist";

struct Flags {
  int ranks = 2;
  int batch = 64;
  int steps = 100;
  int warmup = 20;
  int rounds = 5;
  std::string model = "cycle_vae";
  std::string dataset = "auto";
  int threads = 1;
  int baseline_threads = 0;  // 0: --threads
  int bucket_mib = 25;
  std::vector<std::string> transports = {"shm", "gloo"};
  bool json = false;
  // Child only.
  bool child = false;
  int rank = 0;
  int world = 1;
  int overlap = 1;
  int reduce = 1;
  std::string transport = "gloo";
  std::string rendezvous;
  int announce_fd = -1;
};

std::string ResolveDataset(const std::string& d) {
  if (d != "auto") return d;
  return std::filesystem::exists(std::string(kFashionPath) + "/train-images-idx3-ubyte.gz") ? "fashion_mnist"
                                                                                            : "sprites";
}

absl::StatusOr<dfv::jobspec::JobSpec> MakeSpec(const Flags& f) {
  const std::string dataset = ResolveDataset(f.dataset);
  std::string data_yaml;
  if (dataset == "fashion_mnist") {
    data_yaml = absl::StrFormat("{kind: fashion_mnist, path: %s}", kFashionPath);
  } else if (dataset == "sprites") {
    data_yaml = "{kind: sprites, image_size: 28, channels: 1, sprites_train: 4096, sprites_test: 256, seed: 3}";
  } else {
    return absl::InvalidArgumentError("--dataset: auto, fashion_mnist or sprites");
  }
  // The main example's settings for cycle_vae; other models take defaults.
  const bool cycle = f.model == "cycle_vae";
  const std::string yaml = absl::StrFormat(R"(
name: bench-scaling
model: %s
dataset: %s
%s
train: {epochs: 100, batch_size: %d, lr: 1.0e-4, seed: 1, threads: %d%s}
)",
                                           f.model, data_yaml, cycle ? "model_params: {style_dim: 16, class_dim: 16}" : "",
                                           f.batch, f.threads,
                                           cycle ? ", loss: {reconstruction: 2, reverse_cycle: 10, kl: 3}" : "");
  dfv::jobspec::ParseOptions options;
  options.source_name = "bench-scaling.yaml";
  return dfv::jobspec::ParseJobSpec(yaml, options);
}

std::vector<std::string> ForwardedArgs(const Flags& f, const std::string& transport, int overlap, int reduce,
                                       int threads) {
  return {"--batch", std::to_string(f.batch),     "--steps",      std::to_string(f.steps),
          "--warmup", std::to_string(f.warmup),   "--model",      f.model,
          "--dataset", ResolveDataset(f.dataset), "--threads",    std::to_string(threads),
          "--bucket-mib", std::to_string(f.bucket_mib), "--overlap", std::to_string(overlap),
          "--reduce", std::to_string(reduce), "--transport", transport};
}

int RunChild(const Flags& f) {
  dfv::bench::DieWithParent();
  torch::set_num_threads(f.threads);
  auto spec = MakeSpec(f);
  if (!spec.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", f.rank, spec.status().ToString().c_str());
    return 1;
  }
  if (f.batch % f.world != 0) {
    std::fprintf(stderr, "--batch %d does not split over %d ranks\n", f.batch, f.world);
    return 1;
  }
  auto splits = dfv::data::LoadDataset(spec->dataset);
  if (!splits.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", f.rank, splits.status().ToString().c_str());
    return 1;
  }
  const dfv::data::ImageSet& train = *splits->train;
  torch::manual_seed(spec->train.seed);  // identical initial weights, as the trainer does
  dfv::models::ModelContext context;
  context.spec = &*spec;
  context.channels = train.channels;
  context.image_size = train.height;
  context.num_classes = train.num_classes;
  context.train_size = train.size;
  auto model_or = dfv::models::CreateModel(context);
  if (!model_or.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", f.rank, model_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<dfv::models::Model> model = std::move(*model_or);
  for (auto& [name, module] : model->Modules()) module->train(true);

  std::optional<dfv::dist::ProcessGroup> group;
  std::unique_ptr<dfv::dist::GradientReducer> reducer;
  int64_t parameters = 0;
  for (auto& [name, module] : model->Modules()) {
    for (const torch::Tensor& p : module->parameters()) parameters += p.numel();
  }
  try {
    if (f.world > 1) {
      auto g = dfv::bench::ChildRendezvous(f.rank, f.world, f.rendezvous, f.announce_fd, f.transport);
      if (!g.ok()) {
        std::fprintf(stderr, "rank %d: %s\n", f.rank, g.status().ToString().c_str());
        return 1;
      }
      group.emplace(std::move(*g));
    }
    if (group && f.reduce != 0) {
      dfv::dist::ReducerOptions options;
      options.bucket_bytes = int64_t{f.bucket_mib} << 20;
      options.overlap = f.overlap != 0;
      reducer = std::make_unique<dfv::dist::GradientReducer>(*group->communicator, options);
      std::vector<torch::Tensor> state;
      for (auto& [name, module] : model->Modules()) {
        for (const torch::Tensor& p : module->parameters()) state.push_back(p);
        for (const torch::Tensor& b : module->buffers()) state.push_back(b);
      }
      absl::Status broadcast = reducer->BroadcastFromFirstRank(std::move(state));
      if (!broadcast.ok()) throw std::runtime_error(broadcast.ToString());
      torch::manual_seed(spec->train.seed * 1000003ULL + static_cast<uint64_t>(f.rank));
    }

    dfv::data::LoaderOptions loader_options;
    loader_options.batch_size = f.batch / f.world;
    loader_options.seed = spec->train.seed;
    loader_options.rank = f.rank;
    loader_options.world_size = f.world;
    loader_options.same_class_pair = model->NeedsSameClassPairs();
    loader_options.other_class = model->NeedsOtherClass();
    auto loader = dfv::data::BatchLoader::Create(splits->train, loader_options);
    if (!loader.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", f.rank, loader.status().ToString().c_str());
      return 1;
    }

    // Without a reducer each process trains on its shard as a world of its own.
    dfv::step::StepContext ctx(reducer.get(), reducer ? f.rank : 0, reducer ? f.world : 1);
    double train_step_seconds = 0;
    auto run_step = [&](int64_t step) {
      auto batch = (*loader)->Next();
      if (!batch.ok()) throw std::runtime_error(batch.status().ToString());
      ctx.BeginStep(step, spec->train.seed);
      const auto t0 = Clock::now();
      dfv::models::Metrics metrics = model->TrainStep(*batch, ctx);
      train_step_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    };
    int64_t step = 0;
    for (; step < f.warmup; ++step) run_step(step);
    if (group) {
      torch::Tensor one = torch::zeros({1});
      absl::Status s = group->communicator->AllReduceSum(one);  // barrier
      if (!s.ok()) throw std::runtime_error(s.ToString());
    }
    dfv::dist::ReducerStats before;
    if (reducer) {
      reducer->TakeBlockedSeconds();
      before = reducer->stats();
    }
    train_step_seconds = 0;
    const auto start = Clock::now();
    for (int i = 0; i < f.steps; ++i, ++step) run_step(step);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const double blocked = reducer ? reducer->TakeBlockedSeconds() : 0.0;
    dfv::dist::ReducerStats after;
    if (reducer) after = reducer->stats();

    nlohmann::json result = {{"rank", f.rank},
                             {"world", f.world},
                             {"overlap", f.world > 1 && f.overlap != 0},
                             {"dataset", ResolveDataset(f.dataset)},
                             {"model", f.model},
                             {"parameters", parameters},
                             {"batch_per_rank", f.batch / f.world},
                             {"steps", f.steps},
                             {"wall_s", wall},
                             {"train_step_s", train_step_seconds},
                             {"blocked_s", blocked},
                             {"buckets", after.buckets - before.buckets},
                             {"launched_in_backward", after.launched_in_backward - before.launched_in_backward}};
    dfv::bench::PrintResult(result);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", f.rank, e.what());
    return 1;
  }
  return 0;
}

struct ConfigResult {
  std::string name;
  std::string transport = "gloo";  // of the N-rank runs (the one without all-reduce still meets over it)
  int world = 1;
  int overlap = 0;
  int reduce = 1;
  int threads = 1;
  std::vector<double> samples_per_s;   // per round
  std::vector<double> blocked_share;   // per round, mean over ranks
  std::vector<double> step_ms;         // per round, mean TrainStep time over ranks
  double buckets_per_step = 0;
  double in_backward_share = 0;
  int64_t parameters = 0;
};

int RunParent(const Flags& f) {
  const std::string dataset = ResolveDataset(f.dataset);
  std::fprintf(stderr,
               "dfv_bench_scaling: %s on %s, global batch %d, %d warm-up + %d timed steps, %d round(s), %d "
               "torch thread(s) per process\n",
               f.model.c_str(), dataset.c_str(), f.batch, f.warmup, f.steps, f.rounds, f.threads);
  for (const std::string& t : f.transports) {
    if (!dfv::bench::KnownTransport(t)) {
      std::fprintf(stderr, "dfv_bench_scaling: --transports: '%s' (shm, gloo)\n", t.c_str());
      return 2;
    }
  }
  std::vector<ConfigResult> configs;
  const int baseline_threads = f.baseline_threads > 0 ? f.baseline_threads : f.threads;
  ConfigResult one;
  one.name = baseline_threads == f.threads ? "1 rank" : absl::StrFormat("1 rank, %d threads", baseline_threads);
  one.threads = baseline_threads;
  configs.push_back(one);
  for (const std::string& transport : f.transports) {
    for (int overlap : {1, 0}) {
      ConfigResult c;
      c.name = absl::StrFormat("%d ranks, %s, overlap %s", f.ranks, transport, overlap ? "on" : "off");
      c.transport = transport;
      c.world = f.ranks;
      c.overlap = overlap;
      c.threads = f.threads;
      configs.push_back(c);
    }
  }
  ConfigResult ceiling;
  ceiling.name = absl::StrFormat("%d ranks, no all-reduce", f.ranks);
  ceiling.transport = f.transports.empty() ? "gloo" : f.transports[0];
  ceiling.world = f.ranks;
  ceiling.reduce = 0;
  ceiling.threads = f.threads;
  configs.push_back(ceiling);

  for (int round = 0; round < f.rounds; ++round) {
    for (ConfigResult& c : configs) {
      std::fprintf(stderr, "  round %d: %s ...\n", round + 1, c.name.c_str());
      auto results = dfv::bench::LaunchRanks(c.world, ForwardedArgs(f, c.transport, c.overlap, c.reduce, c.threads), std::chrono::seconds(600));
      if (!results.ok()) {
        std::fprintf(stderr, "dfv_bench_scaling: %s: %s\n", c.name.c_str(), results.status().ToString().c_str());
        return 1;
      }
      double wall = 0, share = 0, step_s = 0, buckets = 0, in_backward = 0;
      for (const nlohmann::json& r : *results) {
        wall = std::max(wall, r["wall_s"].get<double>());
        const double ts = r["train_step_s"].get<double>();
        share += ts > 0 ? r["blocked_s"].get<double>() / ts : 0;
        step_s += ts / f.steps;
        buckets += r["buckets"].get<double>() / f.steps;
        in_backward += r["buckets"].get<double>() > 0
                           ? r["launched_in_backward"].get<double>() / r["buckets"].get<double>()
                           : 0;
        c.parameters = r["parameters"].get<int64_t>();
      }
      const double n = static_cast<double>(results->size());
      c.samples_per_s.push_back(static_cast<double>(f.batch) * f.steps / wall);
      c.blocked_share.push_back(share / n);
      c.step_ms.push_back(1e3 * step_s / n);
      c.buckets_per_step = buckets / n;
      c.in_backward_share = in_backward / n;
    }
  }

  // Speedup: the median over rounds of each round's ratio to that round's
  // 1-rank run, so that the machine's drift between rounds (other virtual
  // machines on the host) cancels out as far as it can.
  auto speedup = [&](const ConfigResult& c) {
    std::vector<double> ratios;
    for (size_t r = 0; r < c.samples_per_s.size(); ++r) ratios.push_back(c.samples_per_s[r] / configs[0].samples_per_s[r]);
    return Median(ratios);
  };
  std::printf("\nData-parallel training throughput: %s on %s (%lld parameters), global batch %d, %d timed steps "
              "after %d warm-up, %d torch thread per process, ranks on this machine\n",
              f.model.c_str(), dataset.c_str(), static_cast<long long>(configs[0].parameters), f.batch, f.steps,
              f.warmup, f.threads);
  std::printf("samples/s = global batch x steps / slowest rank's wall time, median of %d round(s); speedup = "
              "median of the rounds' ratios to the same round's 1-rank run; all-reduce share = blocked in "
              "gradient all-reduce / TrainStep time\n\n",
              f.rounds);
  std::printf("%-28s %-10s | %10s %-22s | %8s | %9s | %12s | %8s %10s\n", "config", "batch", "samples/s",
              "(per round)", "speedup", "step ms", "allreduce %", "buckets", "in bkwd %");
  std::printf("%s\n", std::string(129, '-').c_str());
  nlohmann::json out;
  out["bench"] = "scaling";
  out["model"] = f.model;
  out["dataset"] = dataset;
  out["global_batch"] = f.batch;
  out["steps"] = f.steps;
  out["configs"] = nlohmann::json::array();
  for (const ConfigResult& c : configs) {
    std::string rounds;
    for (double v : c.samples_per_s) rounds += absl::StrFormat("%s%.0f", rounds.empty() ? "" : " ", v);
    const std::string batch = c.world == 1 ? absl::StrFormat("%d", f.batch)
                                           : absl::StrFormat("%d x %d", c.world, f.batch / c.world);
    const double sps = Median(c.samples_per_s);
    const bool reduces = c.world > 1 && c.reduce != 0;
    const std::string share = !reduces ? "-" : absl::StrFormat("%.1f", 100 * Median(c.blocked_share));
    const std::string buckets = !reduces ? "-" : absl::StrFormat("%.1f", c.buckets_per_step);
    const std::string in_backward = !reduces ? "-" : absl::StrFormat("%.0f", 100 * c.in_backward_share);
    std::printf("%-28s %-10s | %10.1f %-22s | %7.2fx | %9.2f | %12s | %8s %10s\n", c.name.c_str(), batch.c_str(),
                sps, ("(" + rounds + ")").c_str(), speedup(c), Median(c.step_ms), share.c_str(), buckets.c_str(),
                in_backward.c_str());
    out["configs"].push_back({{"name", c.name},
                              {"transport", c.world > 1 ? c.transport : ""},
                              {"world", c.world},
                              {"overlap", c.overlap != 0},
                              {"all_reduce", c.reduce != 0},
                              {"samples_per_s", sps},
                              {"samples_per_s_rounds", c.samples_per_s},
                              {"speedup", speedup(c)},
                              {"step_ms", Median(c.step_ms)},
                              {"allreduce_share", Median(c.blocked_share)},
                              {"buckets_per_step", c.buckets_per_step},
                              {"launched_in_backward_share", c.in_backward_share}});
  }
  std::printf("\ntarget: %d ranks >= 1.8x the samples/s of 1 rank; measured, overlap on / off:", f.ranks);
  for (size_t i = 1; i + 1 < configs.size(); i += 2) {
    std::printf(" %s %.2fx / %.2fx;", configs[i].transport.c_str(), speedup(configs[i]), speedup(configs[i + 1]));
  }
  std::printf(" without all-reduce %.2fx\n", speedup(configs.back()));
  if (f.json) std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"dfv_bench_scaling: samples/s of 1 rank vs N data-parallel ranks (processes)"};
  app.add_option("--ranks", f.ranks, "ranks (processes) of the data-parallel runs")->check(CLI::Range(2, 64));
  app.add_option("--batch", f.batch, "global batch size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--steps", f.steps, "timed steps per run")->check(CLI::Range(1, 1 << 20));
  app.add_option("--warmup", f.warmup, "untimed steps first")->check(CLI::Range(0, 1 << 20));
  app.add_option("--rounds", f.rounds, "times each configuration is run (median reported)")
      ->check(CLI::Range(1, 100));
  app.add_option("--model", f.model, "catalogue model");
  app.add_option("--dataset", f.dataset, "auto (Fashion-MNIST if installed, else sprites), fashion_mnist, sprites");
  app.add_option("--threads", f.threads, "torch intra-op threads per process")->check(CLI::Range(1, 256));
  app.add_option("--baseline-threads", f.baseline_threads, "threads of the 1-rank run (default: --threads)")
      ->check(CLI::Range(1, 256));
  app.add_option("--bucket-mib", f.bucket_mib, "GradientReducer bucket size")->check(CLI::Range(1, 4096));
  app.add_option("--transports", f.transports, "transports of the N-rank runs: shm, gloo")->delimiter(',');
  app.add_flag("--json", f.json, "also print the results as one JSON line");
  app.add_flag("--child", f.child)->group("");
  app.add_option("--transport", f.transport)->group("");
  app.add_option("--rank", f.rank)->group("");
  app.add_option("--world", f.world)->group("");
  app.add_option("--overlap", f.overlap)->group("");
  app.add_option("--reduce", f.reduce)->group("");
  app.add_option("--rendezvous", f.rendezvous)->group("");
  app.add_option("--announce-fd", f.announce_fd)->group("");
  CLI11_PARSE(app, argc, argv);
  if (absl::Status kept = dfv::KeepFreedMemoryAsTheTrainer(); !kept.ok()) {
    std::fprintf(stderr, "dfv_bench_scaling: %s\n", std::string(kept.message()).c_str());
    return 1;
  }
  if (!f.child && f.batch % f.ranks != 0) {
    std::fprintf(stderr, "dfv_bench_scaling: --batch %d does not split over %d ranks\n", f.batch, f.ranks);
    return 2;
  }
  return f.child ? RunChild(f) : RunParent(f);
}
