// The whole cluster over TLS on 127.0.0.1: certificates from deploy/certs.sh,
// the coordinator serving TLS with client certificates verified, a worker on
// mutual TLS (channel and health service), dfvctl trusting the cluster CA; a
// small job trains to SUCCEEDED. dfvctl without the CA cannot get in.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "proto/dfv.pb.h"
#include "tests/integration/cluster.h"
#include "tests/testing/certs.h"

namespace dfv::testing {
namespace {

std::vector<std::string> TlsFlags(const rpc::TlsFiles& files) {
  return {"--tls-cert", files.cert, "--tls-key", files.key, "--tls-ca", files.ca};
}

// Certificates for the coordinator and worker w1 in `certs`, then both
// daemons started with TLS on every channel.
void StartTlsCluster(Cluster& cluster, const std::string& certs) {
  ASSERT_TRUE(MakeCerts(certs, {"w1"}).ok());
  ASSERT_TRUE(cluster.StartCoordinator(TlsFlags(CoordinatorTls(certs))).ok()) << cluster.Log("coordinator");
  ASSERT_TRUE(cluster.StartWorker("w1", 1, TlsFlags(WorkerTls(certs, "w1"))).ok()) << cluster.Log("w1");
}

TEST(EndToEndTls, TrainsAJobWithTlsOnEveryChannel) {
  Cluster cluster("tls");
  const std::string certs = cluster.dir() + "/certs";
  ASSERT_NO_FATAL_FAILURE(StartTlsCluster(cluster, certs));
  EXPECT_TRUE(absl::StrContains(cluster.Log("coordinator"), "(TLS)")) << cluster.Log("coordinator");
  EXPECT_TRUE(absl::StrContains(cluster.Log("w1"), "(TLS)")) << cluster.Log("w1");

  // Without the CA dfvctl talks plaintext, which the TLS port refuses.
  CommandResult plaintext = cluster.Dfvctl({"list"});
  EXPECT_NE(plaintext.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(plaintext.err, "cannot reach coordinator")) << plaintext.err;

  cluster.set_dfvctl_args({"--tls-ca", ClientTls(certs).ca});
  CommandResult submit = cluster.Dfvctl({"submit", cluster.WriteJob("job.yaml", SmallJob("tls", "vae", 20))});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string id(absl::StripAsciiWhitespace(submit.out));
  CommandResult watch = cluster.Dfvctl({"watch", id});
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  CommandResult get = cluster.Dfvctl({"get", id, "-o", "json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  v1::Job job;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(get.out, &job).ok()) << get.out;
  EXPECT_EQ(job.state(), v1::SUCCEEDED) << job.reason() << "\n" << cluster.Log("w1");

  // The environment variable works like the flag (dfvctl inherits it).
  cluster.set_dfvctl_args({});
  ASSERT_EQ(::setenv("DFV_TLS_CA", ClientTls(certs).ca.c_str(), 1), 0);
  CommandResult workers = cluster.Dfvctl({"workers"});
  ::unsetenv("DFV_TLS_CA");
  EXPECT_EQ(workers.exit_code, 0) << workers.err;
  EXPECT_TRUE(absl::StrContains(workers.out, "w1")) << workers.out;
}

// The daemons' `health` verb (a container's HEALTHCHECK) talks TLS with the
// CA alone, from the flag or DFV_TLS_CA, and fails without it.
TEST(EndToEndTls, TheHealthVerbChecksBothDaemonsOverTls) {
  Cluster cluster("tls-health");
  const std::string certs = cluster.dir() + "/certs";
  ASSERT_NO_FATAL_FAILURE(StartTlsCluster(cluster, certs));
  cluster.set_dfvctl_args({"--tls-ca", ClientTls(certs).ca});
  std::vector<v1::WorkerInfo> workers = Workers(cluster);
  ASSERT_EQ(workers.size(), 1u);

  CommandResult coordinator = cluster.Run("coordinator", {DFV_COORDINATOR_BINARY, "health", "--address",
                                                          cluster.coordinator_address(), "--tls-ca", ClientTls(certs).ca});
  EXPECT_EQ(coordinator.exit_code, 0) << coordinator.err;
  EXPECT_EQ(coordinator.out, absl::StrCat(cluster.coordinator_address(), " SERVING\n"));

  ASSERT_EQ(::setenv("DFV_TLS_CA", ClientTls(certs).ca.c_str(), 1), 0);
  ASSERT_EQ(::setenv("DFV_HEALTH_ADDRESS", workers[0].address().c_str(), 1), 0);
  CommandResult worker = cluster.Run("w1", {DFV_WORKER_BINARY, "health"});
  ::unsetenv("DFV_TLS_CA");
  ::unsetenv("DFV_HEALTH_ADDRESS");
  EXPECT_EQ(worker.exit_code, 0) << worker.err;
  EXPECT_EQ(worker.out, absl::StrCat(workers[0].address(), " SERVING\n"));

  CommandResult plaintext =
      cluster.Run("coordinator", {DFV_COORDINATOR_BINARY, "health", "--address", cluster.coordinator_address(),
                                  "--timeout", "2"});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(plaintext.err, cluster.coordinator_address())) << plaintext.err;
}

}  // namespace
}  // namespace dfv::testing
