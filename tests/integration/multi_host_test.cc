// dfv across hosts, on real separate network stacks: five network namespaces
// on a bridge (NetnsLab, addresses from 198.18.0.0/24), each with a host name
// of its own: the coordinator, three worker hosts and a client host. TLS, mutual TLS for the workers and bearer
// tokens are on, with certificates and tokens made by deploy/certs.sh. Runs
// as root where `ip netns` works (CI is root); skips saying why otherwise.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"
#include "tests/integration/netns_lab.h"

namespace dfv::testing {
namespace {

constexpr int kCoordinatorPort = 7443;

// The hosts of the lab, and which host each worker runs on.
const std::vector<std::string> kHosts = {"coord", "h1", "h2", "h3", "client"};

std::string SourceDir() { return DFV_SOURCE_DIR; }

// Runs deploy/certs.sh into `dir` for `workers` (NAME=SANS), the
// coordinator's certificate valid for `coordinator_ip`.
absl::Status MakeCerts(const std::string& dir, const std::vector<std::string>& workers,
                       const std::string& coordinator_ip) {
  std::vector<std::string> argv = {"/usr/bin/env", absl::StrCat("DFV_CERT_SANS=IP:", coordinator_ip), "bash",
                                   SourceDir() + "/deploy/certs.sh", dir};
  argv.insert(argv.end(), workers.begin(), workers.end());
  return RunCommand(argv);
}

std::vector<std::string> WorkerCertSpecs(const NetnsLab& net, const std::map<std::string, std::string>& host_of) {
  std::vector<std::string> specs;
  for (const auto& [worker, host] : host_of) specs.push_back(absl::StrCat(worker, "=IP:", net.Address(host)));
  return specs;
}

struct Lab {
  std::unique_ptr<NetnsLab> net;
  std::unique_ptr<Cluster> cluster;
  std::string certs;
  // worker name -> host
  std::map<std::string, std::string> host_of;
};

// Builds the lab and a Cluster whose processes run in it with TLS and
// tokens; `skip` is set (with the reason) when the lab cannot be built here.
void MakeLab(const std::string& name, Lab& lab, std::string* skip) {
  absl::StatusOr<std::unique_ptr<NetnsLab>> net = NetnsLab::Create(kHosts);
  if (absl::IsFailedPrecondition(net.status())) {
    *skip = std::string(net.status().message());
    return;
  }
  ASSERT_TRUE(net.ok()) << net.status();
  lab.net = std::move(net).value();
  lab.host_of = {{"w1", "h1"}, {"w2", "h2"}, {"w3", "h3"}, {"w4", "h3"}};
  const std::string dir = (std::filesystem::path(::testing::TempDir()) / "dfv_multi_host" / name).string();
  std::filesystem::remove_all(dir);
  lab.certs = dir + "/certs";
  const absl::Status made = MakeCerts(lab.certs, WorkerCertSpecs(*lab.net, lab.host_of), lab.net->Address("coord"));
  ASSERT_TRUE(made.ok()) << made;

  ClusterOptions options;
  NetnsLab* netp = lab.net.get();
  auto* host_of = &lab.host_of;
  options.launch = [netp, host_of](const std::string& process, std::vector<std::string> argv) {
    std::string host = process == "coordinator" ? "coord" : process == "dfvctl" ? "client" : "";
    if (host.empty()) {
      auto it = host_of->find(process);
      host = it != host_of->end() ? it->second : "h3";
    }
    return netp->Exec(host, argv);
  };
  const std::string certs = lab.certs;
  options.coordinator_listen = absl::StrCat(lab.net->Address("coord"), ":", kCoordinatorPort);
  options.coordinator_args = {"--tls-cert", certs + "/coordinator.pem", "--tls-key", certs + "/coordinator.key",
                              "--tls-ca",   certs + "/ca.pem",          "--auth-file", certs + "/auth.txt"};
  options.worker_listen = [netp, host_of](const std::string& worker) {
    auto it = host_of->find(worker);
    return absl::StrCat(netp->Address(it != host_of->end() ? it->second : "h3"), ":0");
  };
  options.worker_args = [netp, host_of, certs](const std::string& worker) {
    auto it = host_of->find(worker);
    const std::string address = netp->Address(it != host_of->end() ? it->second : "h3");
    return std::vector<std::string>{"--tls-cert", absl::StrCat(certs, "/worker-", worker, ".pem"),
                                    "--tls-key", absl::StrCat(certs, "/worker-", worker, ".key"),
                                    "--tls-ca", certs + "/ca.pem",
                                    "--data-plane-address", address};
  };
  options.dfvctl_args = {"--tls-ca", certs + "/ca.pem", "--token-file", certs + "/submitter.token"};
  lab.cluster = std::make_unique<Cluster>(name, std::move(options));
}

double SamplesPerSecond(Cluster& cluster, const std::string& id) {
  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  std::vector<double> values;
  for (const v1::JobEvent& e : ParseEvents(watch.out)) {
    if (!e.has_metrics()) continue;
    for (const auto& v : e.metrics().values()) {
      if (v.name() == "samples_per_second") values.push_back(v.value());
    }
  }
  if (values.size() > 1) values.erase(values.begin());  // the first window warms up
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// The backends the job's ranks said they joined over ("rank R of N joined
// over BACKEND at ..."), one entry per rank.
std::multiset<std::string> JoinedOver(Cluster& cluster, const std::string& id) {
  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  std::multiset<std::string> backends;
  for (const v1::JobEvent& e : ParseEvents(watch.out)) {
    if (!e.has_message()) continue;
    const std::string& text = e.message().text();
    const size_t over = text.find(" joined over ");
    if (over == std::string::npos) continue;
    const size_t start = over + std::string(" joined over ").size();
    backends.insert(text.substr(start, text.find(' ', start) - start));
  }
  return backends;
}

TEST(MultiHost, TokensCertificatesAndTransportAreEnforcedAcrossHosts) {
  Lab lab;
  std::string skip;
  ASSERT_NO_FATAL_FAILURE(MakeLab("refusals", lab, &skip));
  if (!skip.empty()) GTEST_SKIP() << skip;
  Cluster& cluster = *lab.cluster;
  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Log("coordinator");
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");

  const std::string job = cluster.WriteJob("job.yaml", SmallJob("refused", "vae", 20));
  const std::string ca = lab.certs + "/ca.pem";
  // No token.
  CommandResult none = cluster.DfvctlWith({"--tls-ca", ca}, {"list"});
  EXPECT_NE(none.exit_code, 0);
  std::printf("no token:        %s", none.err.c_str());
  EXPECT_TRUE(absl::StrContains(none.err, "UNAUTHENTICATED") || absl::StrContains(none.err, "token")) << none.err;
  // A viewer may list but not submit.
  const std::vector<std::string> viewer = {"--tls-ca", ca, "--token-file", lab.certs + "/viewer.token"};
  EXPECT_EQ(cluster.DfvctlWith(viewer, {"list"}).exit_code, 0);
  CommandResult denied = cluster.DfvctlWith(viewer, {"submit", job});
  EXPECT_NE(denied.exit_code, 0);
  std::printf("viewer submits:  %s", denied.err.c_str());
  EXPECT_TRUE(absl::StrContains(denied.err, "PERMISSION_DENIED") || absl::StrContains(denied.err, "submitter"))
      << denied.err;
  // Plaintext against the TLS port.
  CommandResult plain = cluster.DfvctlWith({"--token-file", lab.certs + "/submitter.token"}, {"list"});
  EXPECT_NE(plain.exit_code, 0);
  std::printf("plaintext:       %s", plain.err.c_str());

  // A worker whose certificate another CA signed is refused at the
  // handshake and never registers.
  const std::string rogue = lab.certs + "/../rogue";
  ASSERT_TRUE(MakeCerts(rogue, {"w5=IP:" + lab.net->Address("h2")}, lab.net->Address("coord")).ok());
  daemon::SpawnOptions spawn;
  spawn.argv = lab.net->Exec(
      "h2", {DFV_WORKER_BINARY, "--coordinator", cluster.coordinator_address(), "--listen",
             absl::StrCat(lab.net->Address("h2"), ":0"), "--name", "w5", "--tls-cert", rogue + "/worker-w5.pem",
             "--tls-key", rogue + "/worker-w5.key", "--tls-ca", ca, "--work-dir", cluster.dir() + "/w5-work"});
  spawn.stderr_path = cluster.dir() + "/w5.log";
  auto rogue_worker = daemon::Subprocess::Spawn(spawn);
  ASSERT_TRUE(rogue_worker.ok());
  absl::SleepFor(absl::Seconds(4));
  std::set<std::string> names;
  for (const v1::WorkerInfo& w : Workers(cluster)) names.insert(w.name());
  EXPECT_EQ(names, (std::set<std::string>{"w1"}));
  (*rogue_worker)->Signal(SIGTERM);
  (*rogue_worker)->Wait();
  // Refused by the TLS handshake (the coordinator closes the socket), not by
  // an RPC: no handler ever saw it.
  std::string refused;
  for (absl::string_view line : absl::StrSplit(ReadFileToString(spawn.stderr_path).value_or(""), '\n')) {
    if (absl::StrContains(line, "cannot register")) refused = std::string(line);
  }
  std::printf("rogue worker:    %s\n", refused.c_str());
  EXPECT_TRUE(absl::StrContains(refused, "UNAVAILABLE")) << refused;
  EXPECT_FALSE(absl::StrContains(cluster.Log("coordinator"), "w5")) << cluster.Log("coordinator");
}

TEST(MultiHost, TwoRankJobAcrossHostsSurvivesAPartitionAndTheCutOffTrainerIsFenced) {
  Lab lab;
  std::string skip;
  ASSERT_NO_FATAL_FAILURE(MakeLab("partition", lab, &skip));
  if (!skip.empty()) GTEST_SKIP() << skip;
  Cluster& cluster = *lab.cluster;
  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Log("coordinator");
  for (const char* w : {"w1", "w2"}) ASSERT_TRUE(cluster.StartWorker(w).ok()) << cluster.Log(w);

  // 1. A 2-rank job across two hosts: its gradients cross the bridge.
  const std::string first = Submit(cluster, "first.yaml", SmallJob("across", "vae", 300) + "resources: {workers: 2}\n");
  ASSERT_TRUE(WaitForState(cluster, first, v1::SUCCEEDED, absl::Seconds(300)).ok())
      << cluster.Log("coordinator") << cluster.Log("w1") << cluster.Log("w2");
  const std::string download = cluster.dir() + "/first-artifacts";
  CommandResult artifacts = cluster.Dfvctl({"artifacts", first, "--download", download});
  ASSERT_EQ(artifacts.exit_code, 0) << artifacts.err;
  EXPECT_TRUE(std::filesystem::exists(download + "/report.json"));
  const double across = SamplesPerSecond(cluster, first);
  EXPECT_EQ(JoinedOver(cluster, first), (std::multiset<std::string>{"gloo", "gloo"}));

  // 2. A partition: rank 1's host is cut off for 15 s mid-job.
  ASSERT_TRUE(cluster.StartWorker("w3").ok()) << cluster.Log("w3");
  const std::string id =
      Submit(cluster, "cut.yaml", SmallJob("cut", "vae", 1200) + "resources: {workers: 2}\nmax_restarts: 2\n");
  ASSERT_TRUE(WaitForCheckpoint(cluster, id, absl::Seconds(180))) << cluster.Log("coordinator");
  const v1::Job running = GetJob(cluster, id);
  ASSERT_EQ(running.state(), v1::RUNNING) << running.reason();
  ASSERT_EQ(running.workers_size(), 2);
  const std::string victim = running.workers(1);
  const absl::Time cut = absl::Now();
  ASSERT_TRUE(lab.net->Cut(lab.host_of.at(victim)).ok());
  // The coordinator ends attempt 1 within the lease and places attempt 2 on
  // the two hosts it still reaches.
  absl::Time requeued = absl::InfinitePast();
  absl::Time rerunning = absl::InfinitePast();
  while (absl::Now() - cut < absl::Seconds(60)) {
    const v1::Job job = GetJob(cluster, id);
    if (job.attempt() >= 2 && requeued == absl::InfinitePast()) requeued = absl::Now();
    if (job.attempt() >= 2 && job.state() == v1::RUNNING) {
      rerunning = absl::Now();
      for (const std::string& w : job.workers()) EXPECT_NE(w, victim);
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_NE(rerunning, absl::InfinitePast()) << cluster.Log("coordinator");
  const absl::Duration hold = absl::Seconds(15) - (absl::Now() - cut);
  if (hold > absl::ZeroDuration()) absl::SleepFor(hold);
  ASSERT_TRUE(lab.net->Restore(lab.host_of.at(victim)).ok());
  const absl::Time restored = absl::Now();

  ASSERT_TRUE(WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(400)).ok())
      << cluster.Log("coordinator") << cluster.Log(victim);
  const v1::Job done = GetJob(cluster, id);
  EXPECT_EQ(done.attempt(), 2);
  // Attempt 2 resumed from a checkpoint; attempt 1 never came back.
  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  bool resumed = false;
  int running_states = 0;
  for (const v1::JobEvent& e : ParseEvents(watch.out)) {
    if (e.has_message() && absl::StrContains(e.message().text(), "resumed from")) resumed = true;
    if (e.has_state() && e.state().state() == v1::RUNNING) ++running_states;
  }
  EXPECT_TRUE(resumed) << watch.out;
  EXPECT_EQ(running_states, 2) << "each attempt ran once: " << watch.out;
  // Fenced: once its link was back, the cut-off worker heard that its
  // session had expired, either from a heartbeat (it stops its trainers and
  // registers again) or when its last reports for attempt 1 were refused;
  // nothing of attempt 1 was accepted from it after the cut.
  const std::string victim_log = cluster.Log(victim);
  std::string fenced;
  for (absl::string_view line : absl::StrSplit(victim_log, '\n')) {
    if (fenced.empty() && absl::StrContains(line, "lease expired")) fenced = std::string(line);
  }
  std::printf("fenced: %s\n", fenced.c_str());
  EXPECT_FALSE(fenced.empty()) << victim_log;
  EXPECT_FALSE(absl::StrContains(cluster.Log("coordinator"), absl::StrCat(id, " attempt 1: rank 1 on worker ", victim)))
      << "a report of the cut-off rank was accepted";
  EXPECT_FALSE(absl::StrContains(victim_log, absl::StrCat("assignment ", id, " attempt 2"))) << victim_log;
  std::printf("partition: %s cut; attempt 2 queued after %.1f s, running after %.1f s; link back after %.1f s; "
              "job SUCCEEDED %.1f s after the link came back\n",
              victim.c_str(), absl::ToDoubleSeconds(requeued - cut), absl::ToDoubleSeconds(rerunning - cut),
              absl::ToDoubleSeconds(restored - cut), absl::ToDoubleSeconds(absl::Now() - restored));

  // 3. The same job as step 1 with both ranks on one host.
  cluster.KillWorker("w1");
  cluster.KillWorker("w2");
  // Once both are lost, only the two workers of h3 are left.
  const absl::Time lost_by = absl::Now() + absl::Seconds(30);
  int alive = 0;
  do {
    absl::SleepFor(absl::Milliseconds(200));
    alive = 0;
    for (const v1::WorkerInfo& w : Workers(cluster)) alive += w.state() == v1::WORKER_ALIVE ? 1 : 0;
  } while (alive > 1 && absl::Now() < lost_by);
  ASSERT_EQ(alive, 1) << cluster.Log("coordinator");
  // w4 is a second worker on w3's host.
  ASSERT_TRUE(cluster.StartWorker("w4").ok()) << cluster.Log("w4");
  const std::string same = Submit(cluster, "same.yaml", SmallJob("same-host", "vae", 300) + "resources: {workers: 2}\n",
                                  {"--wait"});
  ASSERT_TRUE(WaitForState(cluster, same, v1::SUCCEEDED, absl::Seconds(300)).ok()) << cluster.Log("coordinator");
  const double one_host = SamplesPerSecond(cluster, same);
  // Both ranks on one host: they share memory instead of the network.
  EXPECT_EQ(JoinedOver(cluster, same), (std::multiset<std::string>{"shm", "shm"}));
  std::printf("2-rank vae, batch 16: %.0f samples/s across two hosts (gloo), %.0f samples/s on one host (shm)\n",
              across, one_host);
}

}  // namespace
}  // namespace dfv::testing
