// Checks of the container deployment without a Docker engine:
// deploy/docker-compose.yml as `docker-compose config` resolves it (both
// profiles), the rules it must keep (addresses from 198.18.0.0/15 only, ports
// on the host's loopback, GPU reservations, one certificate per worker), the
// compose copy of the Prometheus configuration against the original, and the
// Dockerfiles (the shared build stage, health checks through the binaries,
// a non-root user, OCI labels). deploy/compose-test.sh runs the cluster for
// real; these run in CI.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "tests/deploy/programs.h"
#include "tests/deploy/promql_exprs.h"

namespace dfv::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string SourceFile(const std::string& relative) {
  absl::StatusOr<std::string> text = ReadFileToString(absl::StrCat(DFV_SOURCE_DIR, "/", relative));
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : std::string();
}

// `docker-compose config` of deploy/docker-compose.yml for `profile` (the
// resolved file: anchors merged, variables at their defaults, paths
// absolute). NOT_FOUND when docker-compose is not installed.
absl::StatusOr<YAML::Node> ComposeConfig(const std::string& profile) {
  absl::StatusOr<std::string> compose = FindProgram("docker-compose");
  if (!compose.ok()) return compose.status();
  // The defaults of every variable but the secrets folder, which need not
  // exist for `config`.
  for (const char* name : {"DFV_TAG", "DFV_BIND", "DFV_PORT", "DFV_METRICS_PORT", "DFV_PROMETHEUS_PORT",
                           "DFV_GRAFANA_PORT", "DFV_SUBNET"}) {
    unsetenv(name);
  }
  setenv("DFV_SECRETS", "/nonexistent/dfv-secrets", 1);
  absl::StatusOr<ProgramResult> result =
      RunProgram({*compose, "-f", DeployDir() + "/docker-compose.yml", "--profile", profile, "config"});
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InvalidArgumentError(absl::StrCat("docker-compose config: ", result->output));
  }
  return YAML::Load(result->output);
}

// The services `docker-compose --profile P up` starts: those without
// profiles and those listing P.
std::set<std::string> ProfileServices(const YAML::Node& config, const std::string& profile) {
  std::set<std::string> services;
  for (const auto& entry : config["services"]) {
    const YAML::Node profiles = entry.second["profiles"];
    bool in = !profiles || profiles.size() == 0;
    for (const YAML::Node& p : profiles) in = in || p.as<std::string>() == profile;
    if (in) services.insert(entry.first.as<std::string>());
  }
  return services;
}

std::vector<std::string> Strings(const YAML::Node& list) {
  std::vector<std::string> out;
  for (const YAML::Node& item : list) out.push_back(item.as<std::string>());
  return out;
}

class ComposeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ComposeTest, ConfigResolvesWithTheProfilesServices) {
  absl::StatusOr<YAML::Node> config = ComposeConfig(GetParam());
  if (absl::IsNotFound(config.status())) GTEST_SKIP() << config.status().message();
  ASSERT_TRUE(config.ok()) << config.status();
  const std::set<std::string> services = ProfileServices(*config, GetParam());
  if (GetParam() == "cpu") {
    EXPECT_THAT(services, UnorderedElementsAre("coordinator", "prometheus", "grafana", "worker-1", "worker-2"));
  } else {
    EXPECT_THAT(services, UnorderedElementsAre("coordinator", "prometheus", "grafana", "worker-gpu-0", "worker-gpu-1"));
  }
}

// The compose network's subnet lies in 198.18.0.0/15, the range reserved for
// benchmarking, so no container takes an address that could be anyone's.
TEST_P(ComposeTest, NetworkIsInsideTheBenchmarkingRange) {
  absl::StatusOr<YAML::Node> config = ComposeConfig(GetParam());
  if (absl::IsNotFound(config.status())) GTEST_SKIP() << config.status().message();
  ASSERT_TRUE(config.ok()) << config.status();
  const YAML::Node subnets = (*config)["networks"]["default"]["ipam"]["config"];
  ASSERT_TRUE(subnets && subnets.size() > 0) << "the default network has no explicit subnet";
  for (const YAML::Node& entry : subnets) {
    const std::string subnet = entry["subnet"].as<std::string>();
    std::vector<std::string> parts = absl::StrSplit(subnet, '/');
    ASSERT_EQ(parts.size(), 2u) << subnet;
    in_addr address;
    ASSERT_EQ(inet_pton(AF_INET, parts[0].c_str(), &address), 1) << subnet;
    int prefix = 0;
    ASSERT_TRUE(absl::SimpleAtoi(parts[1], &prefix)) << subnet;
    EXPECT_GE(prefix, 15) << subnet;
    EXPECT_EQ(ntohl(address.s_addr) & 0xfffe0000u, 0xc6120000u) << subnet << " is outside 198.18.0.0/15";
  }
  for (const auto& service : (*config)["services"]) {
    EXPECT_FALSE(service.second["network_mode"]) << service.first << " leaves the compose network";
  }
}

// Every published port is bound to the host's loopback by default.
TEST_P(ComposeTest, PortsArePublishedOnLoopbackOnly) {
  absl::StatusOr<YAML::Node> config = ComposeConfig(GetParam());
  if (absl::IsNotFound(config.status())) GTEST_SKIP() << config.status().message();
  ASSERT_TRUE(config.ok()) << config.status();
  std::set<std::string> published;
  for (const auto& service : (*config)["services"]) {
    for (const YAML::Node& port : service.second["ports"]) {
      const std::string text = port.as<std::string>();
      EXPECT_TRUE(absl::StartsWith(text, "127.0.0.1:")) << service.first << " publishes " << text;
      published.insert(absl::StrCat(service.first.as<std::string>(), " ", text));
    }
  }
  EXPECT_THAT(published, Contains("coordinator 127.0.0.1:7070:7070/tcp"));
  EXPECT_THAT(published, Contains("coordinator 127.0.0.1:7071:7071/tcp"));
  EXPECT_THAT(published, Contains("prometheus 127.0.0.1:9090:9090/tcp"));
}

// Each worker is named like its service and host, and mounts the certificate
// deploy/certs.sh issues for that name as worker.pem / worker.key; the
// coordinator and every worker talk TLS and the coordinator asks tokens.
TEST_P(ComposeTest, EveryDaemonUsesTlsAndItsOwnCertificate) {
  absl::StatusOr<YAML::Node> config = ComposeConfig(GetParam());
  if (absl::IsNotFound(config.status())) GTEST_SKIP() << config.status().message();
  ASSERT_TRUE(config.ok()) << config.status();
  const YAML::Node secrets = (*config)["secrets"];
  const std::vector<std::string> coordinator = Strings((*config)["services"]["coordinator"]["command"]);
  EXPECT_THAT(coordinator, Contains("--tls-cert=/run/secrets/coordinator.pem"));
  EXPECT_THAT(coordinator, Contains("--tls-key=/run/secrets/coordinator.key"));
  EXPECT_THAT(coordinator, Contains("--tls-ca=/run/secrets/ca.pem"));
  EXPECT_THAT(coordinator, Contains("--auth-file=/run/secrets/auth.txt"));
  int workers = 0;
  for (const std::string& name : ProfileServices(*config, GetParam())) {
    if (!absl::StartsWith(name, "worker-")) continue;
    ++workers;
    const YAML::Node service = (*config)["services"][name];
    EXPECT_EQ(service["hostname"].as<std::string>(), name);
    EXPECT_EQ(service["environment"]["DFV_WORKER_NAME"].as<std::string>(), name);
    EXPECT_EQ(service["environment"]["DFV_TLS_CA"].as<std::string>(), "/run/secrets/ca.pem");
    const std::vector<std::string> command = Strings(service["command"]);
    EXPECT_THAT(command, Contains("--tls-cert=/run/secrets/worker.pem")) << name;
    EXPECT_THAT(command, Contains("--tls-key=/run/secrets/worker.key")) << name;
    EXPECT_THAT(command, Contains("--coordinator=coordinator:7070")) << name;
    EXPECT_THAT(command, Contains("--data-plane-interface=eth0")) << name;
    std::map<std::string, std::string> mounted;  // target -> file
    for (const YAML::Node& secret : service["secrets"]) {
      const std::string source = secret["source"].as<std::string>();
      const std::string target = secret["target"] ? secret["target"].as<std::string>() : source;
      mounted[target] = secrets[source]["file"].as<std::string>();
    }
    EXPECT_THAT(mounted["worker.pem"], ::testing::EndsWith(absl::StrCat("/worker-", name, ".pem"))) << name;
    EXPECT_THAT(mounted["worker.key"], ::testing::EndsWith(absl::StrCat("/worker-", name, ".key"))) << name;
    EXPECT_THAT(mounted["ca.pem"], ::testing::EndsWith("/ca.pem")) << name;
  }
  EXPECT_EQ(workers, 2);
}

// One GPU per worker service, reserved through the nvidia driver, with what
// NCCL needs: the host's IPC namespace, unlimited locked memory, a large
// /dev/shm, and its sockets on the compose network's interface.
TEST(ComposeGpuTest, EachGpuWorkerReservesOneDistinctGpuForNccl) {
  absl::StatusOr<YAML::Node> config = ComposeConfig("gpu");
  if (absl::IsNotFound(config.status())) GTEST_SKIP() << config.status().message();
  ASSERT_TRUE(config.ok()) << config.status();
  std::set<std::string> gpus;
  for (const std::string& name : ProfileServices(*config, "gpu")) {
    if (!absl::StartsWith(name, "worker-")) continue;
    const YAML::Node service = (*config)["services"][name];
    EXPECT_EQ(service["build"]["dockerfile"].as<std::string>(), "docker/worker-cuda.Dockerfile") << name;
    EXPECT_THAT(Strings(service["command"]), Contains("--device=cuda")) << name;
    const YAML::Node devices = service["deploy"]["resources"]["reservations"]["devices"];
    ASSERT_TRUE(devices && devices.size() == 1) << name;
    EXPECT_EQ(devices[0]["driver"].as<std::string>(), "nvidia") << name;
    EXPECT_THAT(Strings(devices[0]["capabilities"]), Contains("gpu")) << name;
    const std::vector<std::string> ids = Strings(devices[0]["device_ids"]);
    ASSERT_EQ(ids.size(), 1u) << name;
    EXPECT_TRUE(gpus.insert(ids[0]).second) << name << " reserves GPU " << ids[0] << " again";
    EXPECT_EQ(service["ipc"].as<std::string>(), "host") << name;
    EXPECT_EQ(service["ulimits"]["memlock"]["soft"].as<int>(), -1) << name;
    EXPECT_EQ(service["ulimits"]["memlock"]["hard"].as<int>(), -1) << name;
    EXPECT_TRUE(service["shm_size"]) << name;
    EXPECT_EQ(service["environment"]["NCCL_SOCKET_IFNAME"].as<std::string>(), "eth0") << name;
  }
  EXPECT_EQ(gpus.size(), 2u);
}

// Grafana gets deploy/'s provisioning and dashboards where the provider
// config looks, and the datasource's URL names the Prometheus service.
TEST(ComposeGrafanaTest, MountsTheProvisioningWhereItIsRead) {
  absl::StatusOr<YAML::Node> config = ComposeConfig("cpu");
  if (absl::IsNotFound(config.status())) GTEST_SKIP() << config.status().message();
  ASSERT_TRUE(config.ok()) << config.status();
  std::map<std::string, std::string> volumes;  // container path -> host path
  for (const YAML::Node& volume : (*config)["services"]["grafana"]["volumes"]) {
    std::vector<std::string> parts = absl::StrSplit(volume.as<std::string>(), ':');
    ASSERT_GE(parts.size(), 2u);
    volumes[parts[1]] = parts[0];
  }
  EXPECT_EQ(volumes["/etc/grafana/provisioning"], DeployDir() + "/grafana/provisioning");
  const YAML::Node provider = YAML::LoadFile(DeployDir() + "/grafana/provisioning/dashboards/dfv.yml");
  const std::string dashboards = provider["providers"][0]["options"]["path"].as<std::string>();
  EXPECT_EQ(volumes[dashboards], DeployDir() + "/grafana/dashboards");
  const YAML::Node datasource =
      YAML::LoadFile(DeployDir() + "/grafana/provisioning/datasources/dfv-prometheus.yml");
  EXPECT_EQ(datasource["datasources"][0]["url"].as<std::string>(), "http://prometheus:9090");
  EXPECT_TRUE((*config)["services"]["prometheus"]);
}

INSTANTIATE_TEST_SUITE_P(Profiles, ComposeTest, ::testing::Values("cpu", "gpu"));

// deploy/compose/prometheus.yml is deploy/prometheus/prometheus.yml with the
// coordinator reached by its service name: nothing else may differ.
TEST(ComposePrometheusTest, SameAsTheDeployConfigButTheCoordinatorTarget) {
  YAML::Node original = YAML::LoadFile(DeployDir() + "/prometheus/prometheus.yml");
  YAML::Node compose = YAML::LoadFile(DeployDir() + "/compose/prometheus.yml");
  ASSERT_EQ(compose["scrape_configs"][0]["job_name"].as<std::string>(), "dfv-coordinator");
  EXPECT_EQ(compose["scrape_configs"][0]["static_configs"][0]["targets"][0].as<std::string>(), "coordinator:7071");
  compose["scrape_configs"][0]["static_configs"][0]["targets"][0] =
      original["scrape_configs"][0]["static_configs"][0]["targets"][0].as<std::string>();
  YAML::Emitter a, b;
  a << original;
  b << compose;
  EXPECT_EQ(std::string(b.c_str()), std::string(a.c_str()));
}

// The lines of `dockerfile` from the line starting with `from` up to the
// line containing `until` (both included).
std::string Section(const std::string& dockerfile, const std::string& from, const std::string& until) {
  const size_t begin = dockerfile.find(from);
  if (begin == std::string::npos) return "";
  const size_t end = dockerfile.find(until, begin);
  return dockerfile.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// The two CPU images share their build stage word for word, so Docker's
// layer cache builds the binaries once for both.
TEST(DockerfileTest, CoordinatorAndWorkerShareTheBuildStage) {
  const std::string coordinator = SourceFile("docker/coordinator.Dockerfile");
  const std::string worker = SourceFile("docker/worker.Dockerfile");
  const std::string stage = Section(coordinator, "FROM debian:bookworm-slim AS build", "# ---- end of build stage");
  ASSERT_THAT(stage, HasSubstr("docker/build.sh"));
  EXPECT_EQ(Section(worker, "FROM debian:bookworm-slim AS build", "# ---- end of build stage"), stage);
  // The CUDA image runs the same script, so it builds the same targets.
  EXPECT_THAT(SourceFile("docker/worker-cuda.Dockerfile"), HasSubstr("/src/docker/build.sh"));
  // The build stage installs the one package list scripts/install-deps.sh reads.
  EXPECT_THAT(stage, HasSubstr("COPY scripts/packages/build.txt"));
  EXPECT_THAT(SourceFile("scripts/install-deps.sh"), HasSubstr("scripts/packages/$list.txt"));
}

TEST(DockerfileTest, EveryImageIsLabelledRunsAsAUserAndChecksItsHealth) {
  const std::map<std::string, std::string> health = {
      {"coordinator", "[\"dfv-coordinator\", \"health\""},
      {"worker", "[\"dfv-worker\", \"health\""},
      {"worker-cuda", "[\"dfv-worker\", \"health\""},
      {"prometheus", "[\"promtool\", \"query\", \"instant\""},
  };
  for (const auto& [image, command] : health) {
    const std::string file = SourceFile(absl::StrCat("docker/", image, ".Dockerfile"));
    SCOPED_TRACE(image);
    EXPECT_THAT(file, HasSubstr(absl::StrCat("CMD ", command)));
    EXPECT_THAT(file, HasSubstr("HEALTHCHECK"));
    EXPECT_THAT(file, HasSubstr("org.opencontainers.image.title="));
    EXPECT_THAT(file, HasSubstr("org.opencontainers.image.base.name="));
    // The last USER is not root.
    const size_t user = file.rfind("\nUSER ");
    ASSERT_NE(user, std::string::npos);
    const std::string name = file.substr(user + 6, file.find('\n', user + 1) - user - 6);
    EXPECT_NE(name, "root");
    EXPECT_NE(name, "0");
  }
  for (const std::string image : {"coordinator", "worker", "worker-cuda"}) {
    const std::string file = SourceFile(absl::StrCat("docker/", image, ".Dockerfile"));
    EXPECT_THAT(file, HasSubstr("org.opencontainers.image.revision=\"${REVISION}\"")) << image;
    EXPECT_THAT(file, HasSubstr("org.opencontainers.image.version=\"${VERSION}\"")) << image;
    EXPECT_THAT(file, HasSubstr("--mount=type=cache,target=/root/.cache/ccache")) << image;
  }
}

// The daemons' images run as uid and gid 10001, the group deploy/certs.sh is
// told to make the keys readable by (DFV_CERT_GROUP) wherever they are made
// for the compose cluster.
TEST(DockerfileTest, TheContainersGroupIsTheOneTheKeysAreMadeFor) {
  for (const std::string image : {"coordinator", "worker", "worker-cuda"}) {
    const std::string file = SourceFile(absl::StrCat("docker/", image, ".Dockerfile"));
    EXPECT_THAT(file, HasSubstr("groupadd --system --gid 10001 dfv")) << image;
    EXPECT_THAT(file, HasSubstr("useradd --system --uid 10001 --gid 10001")) << image;
    EXPECT_THAT(file, HasSubstr("\nUSER dfv\n")) << image;
  }
  EXPECT_THAT(SourceFile("deploy/compose-test.sh"), HasSubstr("DFV_CERT_GROUP=10001 deploy/certs.sh"));
  EXPECT_THAT(SourceFile("deploy/docker-compose.yml"), HasSubstr("DFV_CERT_GROUP=10001 deploy/certs.sh"));
  EXPECT_THAT(SourceFile("README.md"), HasSubstr("DFV_CERT_GROUP=10001 deploy/certs.sh"));
}

TEST(DockerfileTest, ContextLeavesOutBuildsRunsDataAndSecrets) {
  const std::string ignore = SourceFile(".dockerignore");
  for (const std::string pattern : {"build*/", "runs/", "data/", ".git/", "deploy/secrets/"}) {
    EXPECT_THAT(ignore, HasSubstr(absl::StrCat("\n", pattern, "\n"))) << pattern;
  }
}

}  // namespace
}  // namespace dfv::testing
