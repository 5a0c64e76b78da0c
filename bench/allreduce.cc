// dfv_bench_allreduce: all-reduce throughput of the gradient reducer against
// one flat all-reduce, on N ranks (default 2) that are separate processes on
// this machine, over each transport ranks on one host can use: shared memory
// (dist::CreateShmCommunicator, what the trainer uses when every rank is on
// one host) and loopback Gloo.
//
// For each transport and size (default 1, 25 and 100 MiB of float32
// gradients):
//   bucketed: a dist::GradientReducer (default 25 MiB buckets, overlap off)
//             reducing a set of parameter tensors
//             totalling that size (the gradients are set directly, no
//             backward), driven through BeforeBackward + Synchronize as
//             StepContext::Update drives it. The first (warm-up) Synchronize
//             copies the gradients into the buckets and makes them aliases of
//             the buckets; from then on the gradients are the buckets, as in
//             training, and Synchronize is the bucket all-reduces alone;
//   flat:     Communicator::AllReduceSum of one contiguous tensor of the size.
// Same process group, same run; repetitions interleaved (the order alternates
// each repetition), each preceded by a 1-float all-reduce as a barrier. A
// repetition's time is the slowest rank's; medians over the repetitions after
// the warm-up. GB/s = size / time (for 2 ranks a ring all-reduce moves
// 2 (N-1)/N = 1 times the size per rank each way, so this is also the bus
// bandwidth). The transports run one after the other in the same run; the
// last table compares their flat all-reduces.
//
//   dfv_bench_allreduce [--ranks 2] [--sizes-mib 1,25,100] [--reps 50]
//                       [--warmup 2] [--tensor-kib 1024] [--bucket-mib 25]
//                       [--threads 1] [--transports shm,gloo] [--json]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "bench/launch.h"
#include "common/status_macros.h"
#include "worker/dist/reducer.h"

namespace {

using Clock = std::chrono::steady_clock;
using dfv::bench::Median;

struct Flags {
  int ranks = 2;
  std::vector<int> sizes_mib = {1, 25, 100};
  int reps = 50;
  int warmup = 2;
  int tensor_kib = 1024;
  int bucket_mib = 25;
  int threads = 1;
  std::vector<std::string> transports = {"shm", "gloo"};
  int shm_chunk_kib = static_cast<int>(dfv::dist::ShmOptions{}.chunk_bytes >> 10);
  bool json = false;
  // Child only.
  bool child = false;
  std::string transport;
  int rank = 0;
  int world = 1;
  std::string rendezvous;
  int announce_fd = -1;
};

std::vector<std::string> ForwardedArgs(const Flags& f, const std::string& transport) {
  std::string sizes;
  for (size_t i = 0; i < f.sizes_mib.size(); ++i) sizes += (i ? "," : "") + std::to_string(f.sizes_mib[i]);
  return {"--sizes-mib", sizes,
          "--reps", std::to_string(f.reps),
          "--warmup", std::to_string(f.warmup),
          "--tensor-kib", std::to_string(f.tensor_kib),
          "--bucket-mib", std::to_string(f.bucket_mib),
          "--threads", std::to_string(f.threads),
          "--transport", transport,
          "--shm-chunk-kib", std::to_string(f.shm_chunk_kib)};
}

int RunChild(const Flags& f) {
  dfv::bench::DieWithParent();
  torch::set_num_threads(f.threads);
  auto group = dfv::bench::ChildRendezvous(f.rank, f.world, f.rendezvous, f.announce_fd, f.transport,
                                               size_t(f.shm_chunk_kib) << 10);
  if (!group.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", f.rank, group.status().ToString().c_str());
    return 1;
  }
  dfv::dist::Communicator& comm = *group->communicator;
  dfv::dist::ReducerOptions options;
  options.bucket_bytes = int64_t{f.bucket_mib} << 20;
  options.overlap = false;
  dfv::dist::GradientReducer reducer(comm, options);

  auto check = [&](const absl::Status& s) {
    if (!s.ok()) throw std::runtime_error(s.ToString());
  };
  torch::Tensor one = torch::zeros({1});
  auto barrier = [&] { check(comm.AllReduceSum(one)); };

  nlohmann::json result;
  result["rank"] = f.rank;
  result["world"] = f.world;
  result["sizes"] = nlohmann::json::array();
  try {
    for (int size_mib : f.sizes_mib) {
      const int64_t total = (int64_t{size_mib} << 20) / int64_t{sizeof(float)};
      const int64_t per_tensor = std::max<int64_t>(1, (int64_t{f.tensor_kib} << 10) / int64_t{sizeof(float)});
      std::vector<torch::Tensor> params;
      for (int64_t done = 0; done < total; done += per_tensor) {
        const int64_t n = std::min(per_tensor, total - done);
        torch::Tensor p = torch::zeros({n}, torch::requires_grad());
        p.mutable_grad() = torch::randn({n});
        params.push_back(p);
      }
      torch::Tensor flat = torch::randn({total});
      absl::StatusOr<size_t> planned = reducer.BucketCount(params);
      check(planned.status());
      const size_t buckets = *planned;
      std::vector<double> bucketed_s, flat_s;
      for (int i = 0; i < f.warmup + f.reps; ++i) {
        for (int k = 0; k < 2; ++k) {
          const bool bucketed = (k == 0) == (i % 2 == 0);
          barrier();
          const auto t0 = Clock::now();
          if (bucketed) {
            check(reducer.BeforeBackward(params));
            check(reducer.Synchronize(params));
          } else {
            check(comm.AllReduceSum(flat));
          }
          const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
          // Keeps the values bounded (untimed); for the gradients this is
          // what Update's loss / N does.
          if (bucketed) {
            torch::NoGradGuard no_grad;
            for (torch::Tensor& p : params) p.mutable_grad().mul_(1.0 / f.world);
          } else {
            flat.mul_(1.0 / f.world);
          }
          if (i >= f.warmup) (bucketed ? bucketed_s : flat_s).push_back(seconds);
        }
      }
      reducer.TakeBlockedSeconds();
      result["sizes"].push_back({{"mib", size_mib},
                                 {"bytes", total * int64_t{sizeof(float)}},
                                 {"tensors", params.size()},
                                 {"buckets", buckets},
                                 {"bucketed_s", bucketed_s},
                                 {"flat_s", flat_s}});
    }
    barrier();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", f.rank, e.what());
    return 1;
  }
  dfv::bench::PrintResult(result);
  return 0;
}

struct SizeResult {
  int mib = 0;
  int tensors = 0;
  int buckets = 0;
  double bytes = 0;
  std::vector<double> bucketed_s, flat_s;  // per repetition, the slowest rank's
};

// The medians of one transport's run, per size.
absl::StatusOr<std::vector<SizeResult>> RunTransport(const Flags& f, const std::string& transport) {
  DFV_ASSIGN_OR_RETURN(std::vector<nlohmann::json> results,
                       dfv::bench::LaunchRanks(f.ranks, ForwardedArgs(f, transport), std::chrono::seconds(600)));
  std::vector<SizeResult> sizes;
  const nlohmann::json& first = results[0];
  for (size_t s = 0; s < first["sizes"].size(); ++s) {
    SizeResult size;
    size.mib = first["sizes"][s]["mib"].get<int>();
    size.tensors = first["sizes"][s]["tensors"].get<int>();
    size.buckets = first["sizes"][s]["buckets"].get<int>();
    size.bytes = first["sizes"][s]["bytes"].get<double>();
    for (size_t i = 0; i < first["sizes"][s]["bucketed_s"].size(); ++i) {
      double b = 0, fl = 0;
      for (const nlohmann::json& r : results) {
        b = std::max(b, r["sizes"][s]["bucketed_s"][i].get<double>());
        fl = std::max(fl, r["sizes"][s]["flat_s"][i].get<double>());
      }
      size.bucketed_s.push_back(b);
      size.flat_s.push_back(fl);
    }
    sizes.push_back(std::move(size));
  }
  return sizes;
}

int RunParent(const Flags& f) {
  for (const std::string& t : f.transports) {
    if (!dfv::bench::KnownTransport(t)) {
      std::fprintf(stderr, "dfv_bench_allreduce: --transports: '%s' (shm, gloo)\n", t.c_str());
      return 2;
    }
  }
  std::fprintf(stderr, "dfv_bench_allreduce: %d ranks (processes), %d warm-up + %d reps per size\n", f.ranks,
               f.warmup, f.reps);
  std::vector<std::vector<SizeResult>> by_transport;
  for (const std::string& transport : f.transports) {
    std::fprintf(stderr, "  %s ...\n", transport.c_str());
    absl::StatusOr<std::vector<SizeResult>> sizes = RunTransport(f, transport);
    if (!sizes.ok()) {
      std::fprintf(stderr, "dfv_bench_allreduce: %s: %s\n", transport.c_str(), sizes.status().ToString().c_str());
      return 1;
    }
    by_transport.push_back(*std::move(sizes));
  }
  nlohmann::json out;
  out["bench"] = "allreduce";
  out["ranks"] = f.ranks;
  out["threads_per_rank"] = f.threads;
  out["bucket_mib"] = f.bucket_mib;
  out["reps"] = f.reps;
  out["transports"] = nlohmann::json::array();
  std::printf("\nAll-reduce of float32 gradients, %d ranks = %d processes on this machine, %d reps (median; a rep's "
              "time is its slowest rank's)\n",
              f.ranks, f.ranks, f.reps);
  std::printf("bucketed = GradientReducer (%d MiB buckets, overlap off) over %d KiB tensors; flat = one "
              "Communicator::AllReduceSum\n\n",
              f.bucket_mib, f.tensor_kib);
  std::printf("%-9s %8s %8s %8s | %12s %8s | %12s %8s | %14s\n", "transport", "size", "tensors", "buckets",
              "bucketed s", "GB/s", "flat s", "GB/s", "bucketed/flat");
  std::printf("%s\n", std::string(106, '-').c_str());
  for (size_t t = 0; t < f.transports.size(); ++t) {
    nlohmann::json sizes = nlohmann::json::array();
    for (const SizeResult& size : by_transport[t]) {
      const double mb = Median(size.bucketed_s), mf = Median(size.flat_s);
      std::printf("%-9s %5d MiB %8d %8d | %12.5f %8.3f | %12.5f %8.3f | %14.3f\n", f.transports[t].c_str(),
                  size.mib, size.tensors, size.buckets, mb, size.bytes / mb / 1e9, mf, size.bytes / mf / 1e9,
                  mb / mf);
      sizes.push_back({{"mib", size.mib},
                       {"tensors", size.tensors},
                       {"buckets", size.buckets},
                       {"bucketed_median_s", mb},
                       {"flat_median_s", mf},
                       {"bucketed_gbps", size.bytes / mb / 1e9},
                       {"flat_gbps", size.bytes / mf / 1e9},
                       {"ratio_bucketed_over_flat", mb / mf},
                       {"bucketed_s", size.bucketed_s},
                       {"flat_s", size.flat_s}});
    }
    out["transports"].push_back({{"transport", f.transports[t]}, {"sizes", sizes}});
  }
  std::printf("\ntarget: bucketed within 10%% of flat (ratio <= 1.10)\n");
  if (f.transports.size() > 1) {
    std::printf("flat all-reduce time, %s / %s:", f.transports[1].c_str(), f.transports[0].c_str());
    for (size_t s = 0; s < by_transport[0].size(); ++s) {
      std::printf("%s %d MiB %.2fx", s ? "," : "", by_transport[0][s].mib,
                  Median(by_transport[1][s].flat_s) / Median(by_transport[0][s].flat_s));
    }
    std::printf("\n");
  }
  if (f.json) std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"dfv_bench_allreduce: GradientReducer's bucketed all-reduce vs one flat all-reduce, over shared "
               "memory and loopback Gloo"};
  app.add_option("--ranks", f.ranks, "ranks (processes)")->check(CLI::Range(2, 64));
  app.add_option("--sizes-mib", f.sizes_mib, "gradient sizes in MiB")->delimiter(',');
  app.add_option("--reps", f.reps, "timed repetitions per size and method")->check(CLI::Range(1, 10000));
  app.add_option("--warmup", f.warmup, "untimed repetitions first")->check(CLI::Range(0, 10000));
  app.add_option("--tensor-kib", f.tensor_kib, "size of each parameter tensor of the bucketed set")
      ->check(CLI::Range(1, 1 << 22));
  app.add_option("--bucket-mib", f.bucket_mib, "GradientReducer bucket size")->check(CLI::Range(1, 4096));
  app.add_option("--threads", f.threads, "torch intra-op threads per rank")->check(CLI::Range(1, 256));
  app.add_option("--transports", f.transports, "transports to measure, in turn: shm, gloo")->delimiter(',');
  app.add_option("--shm-chunk-kib", f.shm_chunk_kib, "the shared-memory segment's chunk (ShmOptions::chunk_bytes)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_flag("--json", f.json, "also print the results as one JSON line");
  app.add_flag("--child", f.child)->group("");
  app.add_option("--transport", f.transport)->group("");
  app.add_option("--rank", f.rank)->group("");
  app.add_option("--world", f.world)->group("");
  app.add_option("--rendezvous", f.rendezvous)->group("");
  app.add_option("--announce-fd", f.announce_fd)->group("");
  CLI11_PARSE(app, argc, argv);
  return f.child ? RunChild(f) : RunParent(f);
}
