// common/rpc/tls: real TLS servers and clients on loopback with certificates
// from deploy/certs.sh.
#include "common/rpc/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>

#include <atomic>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/certs.h"

namespace dfv::rpc {
namespace {

using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const std::string dir = (std::filesystem::path(::testing::TempDir()) / "dfv_tls" / name).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Answers every method with the caller's PeerCertificateIdentity: the name,
// or "NOT_FOUND" when there is none. Counts the calls it answered.
class IdentityService : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override {
    calls_.fetch_add(1);
    return new Reactor(context);
  }
  int calls() const { return calls_.load(); }

 private:
  class Reactor : public grpc::ServerGenericBidiReactor {
   public:
    explicit Reactor(grpc::GenericCallbackServerContext* context) {
      absl::StatusOr<std::string> identity = PeerCertificateIdentity(*context);
      const std::string text =
          identity.ok() ? *identity : std::string(absl::StatusCodeToString(identity.status().code()));
      grpc::Slice slice(text);
      response_ = grpc::ByteBuffer(&slice, 1);
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
        return;
      }
      StartWrite(&response_);
    }
    void OnWriteDone(bool ok) override { Finish(grpc::Status::OK); }
    void OnDone() override { delete this; }

   private:
    grpc::ByteBuffer request_;
    grpc::ByteBuffer response_;
  };

  std::atomic<int> calls_{0};
};

struct TestServer {
  std::unique_ptr<IdentityService> service = std::make_unique<IdentityService>();
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

absl::StatusOr<TestServer> StartServer(const TlsFiles& files, ClientCertificates clients) {
  TestServer result;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeServerCredentials(files, clients);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", *credentials, &port);
  builder.RegisterCallbackGenericService(result.service.get());
  result.server = builder.BuildAndStart();
  if (result.server == nullptr || port == 0) return absl::UnavailableError("cannot start the server");
  result.address = absl::StrCat("127.0.0.1:", port);
  return result;
}

// One call on a new channel: what the server said the caller is, and what
// the caller saw of the server's certificate.
struct CallResult {
  grpc::Status status;
  std::string identity;     // the server's answer
  std::string server_cn;    // the common name of the server's certificate
  std::string server_pem;   // the server's certificate as PEM
};

std::string PropertyValue(const grpc::AuthContext& context, const char* name) {
  std::vector<grpc::string_ref> values = context.FindPropertyValues(name);
  return values.empty() ? "" : std::string(values.front().data(), values.front().size());
}

CallResult Call(const std::string& address, const TlsFiles& files) {
  CallResult result;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(address, files);
  if (!channel.ok()) {
    result.status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(channel.status().message()));
    return result;
  }
  grpc::GenericStub stub(*channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty("", 0);
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  stub.UnaryCall(&context, "/dfv.test.Identity/Who", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   result.status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (result.status.ok()) {
    std::vector<grpc::Slice> slices;
    if (response.Dump(&slices).ok()) {
      for (const auto& slice : slices) {
        result.identity.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
    }
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth != nullptr) {
      result.server_cn = PropertyValue(*auth, GRPC_X509_CN_PROPERTY_NAME);
      result.server_pem = PropertyValue(*auth, GRPC_X509_PEM_CERT_PROPERTY_NAME);
    }
  }
  return result;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    cluster_ = dir_ + "/cluster";
    other_ = dir_ + "/other";
    ASSERT_TRUE(testing::MakeCerts(cluster_, {"w1"}).ok());
    ASSERT_TRUE(testing::MakeCerts(other_, {"w1"}).ok());
  }

  std::string dir_;
  std::string cluster_;  // the cluster's CA and certificates
  std::string other_;    // another CA's, same names
};

TEST_F(TlsTest, ClientWithTheCaOnlyConnectsWithoutAnIdentity) {
  auto server = StartServer(testing::CoordinatorTls(cluster_), ClientCertificates::kRequestedAndVerified);
  ASSERT_TRUE(server.ok()) << server.status();
  CallResult result = Call(server->address, testing::ClientTls(cluster_));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.identity, "NOT_FOUND");
  EXPECT_EQ(result.server_cn, "coordinator");
}

TEST_F(TlsTest, PeerCertificateIdentityIsTheWorkersCommonName) {
  auto server = StartServer(testing::CoordinatorTls(cluster_), ClientCertificates::kRequestedAndVerified);
  ASSERT_TRUE(server.ok()) << server.status();
  CallResult result = Call(server->address, testing::WorkerTls(cluster_, "w1"));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.identity, "w1");
}

TEST_F(TlsTest, PlaintextClientIsRefused) {
  auto server = StartServer(testing::CoordinatorTls(cluster_), ClientCertificates::kRequestedAndVerified);
  ASSERT_TRUE(server.ok()) << server.status();
  CallResult result = Call(server->address, TlsFiles{});
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE) << result.status.error_message();
  EXPECT_EQ(server->service->calls(), 0);
}

TEST_F(TlsTest, WorkerCertificateFromAnotherCaFailsTheHandshake) {
  auto server = StartServer(testing::CoordinatorTls(cluster_), ClientCertificates::kRequestedAndVerified);
  ASSERT_TRUE(server.ok()) << server.status();
  // It trusts the cluster's CA, so only the server's check of its
  // certificate can refuse it.
  TlsFiles foreign = testing::WorkerTls(other_, "w1");
  foreign.ca = testing::ClientTls(cluster_).ca;
  CallResult result = Call(server->address, foreign);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE) << result.status.error_message();
  EXPECT_EQ(server->service->calls(), 0);
}

TEST_F(TlsTest, ClientChecksTheServersCaAndName) {
  auto server = StartServer(testing::CoordinatorTls(cluster_), ClientCertificates::kRequestedAndVerified);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(Call(server->address, testing::ClientTls(other_)).status.error_code(), grpc::StatusCode::UNAVAILABLE);

  TlsFiles named = testing::ClientTls(cluster_);
  named.server_name = "coordinator";  // a DNS SAN of its certificate
  EXPECT_TRUE(Call(server->address, named).status.ok());
  named.server_name = "elsewhere.example";
  EXPECT_EQ(Call(server->address, named).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  // "localhost" is a SAN too; the address's host is checked without an override.
  const std::string port = server->address.substr(server->address.rfind(':') + 1);
  EXPECT_TRUE(Call("localhost:" + port, testing::ClientTls(cluster_)).status.ok());
}

TEST_F(TlsTest, HealthServerWithoutClientCertificates) {
  auto server = StartServer(testing::WorkerTls(cluster_, "w1"), ClientCertificates::kNotRequested);
  ASSERT_TRUE(server.ok()) << server.status();
  CallResult result = Call(server->address, testing::ClientTls(cluster_));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.server_cn, "w1");
  EXPECT_EQ(result.identity, "NOT_FOUND");
}

TEST(PeerCertificateIdentityTest, PlaintextServerHasNoIdentity) {
  auto server = StartServer(TlsFiles{}, ClientCertificates::kRequestedAndVerified);
  ASSERT_TRUE(server.ok()) << server.status();
  CallResult result = Call(server->address, TlsFiles{});
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.identity, "NOT_FOUND");
}

// Renewed files take effect for new connections without a restart: first a
// renewal under the same CA (deploy/certs.sh run again), then a move to
// another CA, after which the old CA's clients and workers are refused.
TEST_F(TlsTest, RotatedFilesServeNewConnectionsWithoutARestart) {
  // The server reads its own copies, so the test can replace them.
  const std::string live = dir_ + "/live";
  std::filesystem::create_directories(live);
  TlsFiles files;
  files.cert = live + "/server.pem";
  files.key = live + "/server.key";
  files.ca = live + "/ca.pem";
  files.refresh_interval = absl::Seconds(1);
  auto install = [&](const std::string& from) {
    for (const auto& [source, target] : std::vector<std::pair<std::string, std::string>>{
             {from + "/coordinator.key", files.key}, {from + "/coordinator.pem", files.cert}, {from + "/ca.pem", files.ca}}) {
      absl::StatusOr<std::string> text = ReadFileToString(source);
      ASSERT_TRUE(text.ok()) << text.status();
      ASSERT_TRUE(WriteFileAtomically(target, *text).ok());
    }
  };
  install(cluster_);
  auto server = StartServer(files, ClientCertificates::kRequestedAndVerified);
  ASSERT_TRUE(server.ok()) << server.status();
  CallResult before = Call(server->address, testing::WorkerTls(cluster_, "w1"));
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  EXPECT_EQ(before.identity, "w1");
  ASSERT_EQ(before.server_pem, *ReadFileToString(cluster_ + "/coordinator.pem"));

  // Renewal: a new key and serial under the same CA.
  ASSERT_TRUE(testing::MakeCerts(cluster_).ok());
  const std::string renewed = *ReadFileToString(cluster_ + "/coordinator.pem");
  ASSERT_NE(renewed, before.server_pem);
  install(cluster_);
  auto wait_for = [&](const TlsFiles& client, auto done) {
    CallResult result;
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    do {
      result = Call(server->address, client);
      if (done(result)) break;
      absl::SleepFor(absl::Milliseconds(200));
    } while (absl::Now() < deadline);
    return result;
  };
  CallResult after = wait_for(testing::ClientTls(cluster_), [&](const CallResult& r) { return r.server_pem == renewed; });
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.server_pem, renewed);

  // A new CA: the other cluster's clients and workers get in, ours no more.
  install(other_);
  CallResult moved = wait_for(testing::WorkerTls(other_, "w1"), [](const CallResult& r) { return r.status.ok(); });
  ASSERT_TRUE(moved.status.ok()) << moved.status.error_message();
  EXPECT_EQ(moved.identity, "w1");
  EXPECT_EQ(moved.server_pem, *ReadFileToString(other_ + "/coordinator.pem"));
  EXPECT_EQ(Call(server->address, testing::ClientTls(cluster_)).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  TlsFiles old_worker = testing::WorkerTls(cluster_, "w1");
  old_worker.ca = testing::ClientTls(other_).ca;  // trusts the server; its own certificate is the old CA's
  EXPECT_EQ(Call(server->address, old_worker).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ValidationNamesTheFlagAndTheFile) {
  TlsFiles files = testing::CoordinatorTls(cluster_);
  TlsFiles no_key = files;
  no_key.key.clear();
  absl::Status status = ValidateTlsFiles(no_key, true, true);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("--tls-key: required with --tls-cert"));

  TlsFiles no_cert = files;
  no_cert.cert.clear();
  EXPECT_THAT(ValidateTlsFiles(no_cert, false, true).message(), HasSubstr("--tls-cert: required with --tls-key"));

  TlsFiles no_ca = files;
  no_ca.ca.clear();
  EXPECT_THAT(ValidateTlsFiles(no_ca, true, true).message(), HasSubstr("--tls-ca: required"));
  EXPECT_TRUE(ValidateTlsFiles(no_ca, true, false).ok());
  EXPECT_THAT(ValidateTlsFiles(testing::ClientTls(cluster_), true, true).message(),
              HasSubstr("--tls-cert: required"));

  TlsFiles missing = files;
  missing.ca = dir_ + "/nowhere/ca.pem";
  status = ValidateTlsFiles(missing, true, true);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("--tls-ca: cannot read " + missing.ca));

  TlsFiles swapped = files;
  swapped.key = files.cert;
  EXPECT_THAT(ValidateTlsFiles(swapped, true, true).message(),
              HasSubstr("--tls-key: " + files.cert + " holds no unencrypted PEM private key"));
  swapped = files;
  swapped.cert = files.ca;
  EXPECT_THAT(ValidateTlsFiles(swapped, true, true).message(),
              HasSubstr("--tls-key: " + files.key + " is not the key of the certificate in " + files.ca));
  TlsFiles not_pem = files;
  not_pem.ca = files.key;
  EXPECT_THAT(ValidateTlsFiles(not_pem, true, true).message(), HasSubstr("--tls-ca: " + files.key + " holds no PEM certificate"));

  TlsFiles name_only;
  name_only.server_name = "coordinator";
  EXPECT_THAT(ValidateTlsFiles(name_only, false, false).message(), HasSubstr("--tls-server-name: needs --tls-ca"));
  EXPECT_FALSE(name_only.empty());
  EXPECT_THAT(MakeChannel("127.0.0.1:1", name_only).status().message(), HasSubstr("--tls-server-name: needs --tls-ca"));
  EXPECT_TRUE(ValidateTlsFiles(files, true, true).ok());

  // The credentials refuse what validation refuses.
  EXPECT_TRUE(absl::IsInvalidArgument(MakeServerCredentials(no_key, ClientCertificates::kRequestedAndVerified).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(MakeServerCredentials(no_ca, ClientCertificates::kRequestedAndVerified).status()));
  EXPECT_TRUE(MakeServerCredentials(no_ca, ClientCertificates::kNotRequested).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(MakeChannelCredentials(no_ca).status()));
}

ListenRule Rule(bool tls, bool insecure, bool tls_supported = true) {
  ListenRule rule;
  rule.tls = tls;
  rule.insecure = insecure;
  rule.tls_supported = tls_supported;
  return rule;
}

TEST(ListenRuleTest, LoopbackAlwaysOtherAddressesWithTlsOrInsecure) {
  const HostPort loopback{"127.0.0.1", 0};
  const HostPort any{"0.0.0.0", 7070};
  const HostPort lan{"198.18.0.1", 7070};
  EXPECT_EQ(*CheckListenAddress(loopback, "--listen", {}), ListenExposure::kLoopback);
  EXPECT_EQ(*CheckListenAddress(HostPort{"[::1]", 0}, "--listen", {}), ListenExposure::kLoopback);
  EXPECT_EQ(*CheckListenAddress(HostPort{"localhost", 0}, "--listen", Rule(false, true)),
            ListenExposure::kLoopback);
  EXPECT_EQ(*CheckListenAddress(loopback, "--listen", Rule(true, false)), ListenExposure::kTls);
  EXPECT_EQ(DescribeExposure(ListenExposure::kLoopback), "plaintext, loopback only");

  for (const HostPort& host : {any, lan}) {
    absl::StatusOr<ListenExposure> refused = CheckListenAddress(host, "--listen", {});
    EXPECT_TRUE(absl::IsInvalidArgument(refused.status()));
    EXPECT_THAT(refused.status().message(),
                HasSubstr("no TLS configured: --listen must be a loopback address (got " + host.host + ")"));
    EXPECT_THAT(refused.status().message(), HasSubstr("--tls-cert"));
    EXPECT_THAT(refused.status().message(), HasSubstr("--insecure"));
    EXPECT_EQ(*CheckListenAddress(host, "--listen", Rule(true, false)), ListenExposure::kTls);
    EXPECT_EQ(*CheckListenAddress(host, "--listen", Rule(false, true)), ListenExposure::kInsecurePlaintext);
  }
  absl::StatusOr<ListenExposure> metrics =
      CheckListenAddress(any, "--metrics-listen", Rule(false, false, false));
  EXPECT_THAT(metrics.status().message(), HasSubstr("--metrics-listen must be a loopback address"));
  EXPECT_THAT(metrics.status().message(), ::testing::Not(HasSubstr("--tls-cert")));
  EXPECT_THAT(InsecureListenWarning("--listen", "0.0.0.0:7070"), HasSubstr("PLAINTEXT"));
}

}  // namespace
}  // namespace dfv::rpc
