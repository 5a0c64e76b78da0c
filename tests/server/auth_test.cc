// The coordinator's access rules without gRPC calls: the auth file parser,
// the method table against the proto services, the Authenticator's
// decisions, and deploy/tokens.sh against the parser.
#include "server/auth.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "common/file_util.h"
#include "common/rpc/bearer_token.h"
#include "proto/dfv.grpc.pb.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Line(const std::string& token, const std::string& role, const std::string& name) {
  return absl::StrCat(HashToken(token), " ", role, " ", name, "\n");
}

std::set<std::string> ServiceMethods(const char* service) {
  const google::protobuf::ServiceDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  EXPECT_NE(descriptor, nullptr) << service;
  std::set<std::string> methods;
  for (int i = 0; descriptor != nullptr && i < descriptor->method_count(); ++i) {
    methods.insert(absl::StrCat("/", service, "/", descriptor->method(i)->name()));
  }
  return methods;
}

TEST(HashTokenTest, IsSha256InHex) {
  // FIPS 180-2's test vector for "abc".
  EXPECT_EQ(HashToken("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(TokenTableTest, ParsesRolesNamesCommentsAndBlankLines) {
  const std::string text = "# the team's tokens\n\n" + Line("s3cret-a", "submitter", "alice") +
                           "   \n" + "  " + Line("s3cret-b", "viewer", "bob@ci") +
                           // Upper-case hex is the same hash.
                           absl::AsciiStrToUpper(HashToken("s3cret-c")).replace(0, 7, "sha256:") +
                           "\tviewer\tcarol\n";
  absl::StatusOr<TokenTable> table = TokenTable::Parse(text, "auth.txt");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->entries().size(), 3u);
  const TokenEntry* alice = table->Find("s3cret-a");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kSubmitter);
  ASSERT_NE(table->Find("s3cret-b"), nullptr);
  EXPECT_EQ(table->Find("s3cret-b")->role, Role::kViewer);
  ASSERT_NE(table->Find("s3cret-c"), nullptr);
  EXPECT_EQ(table->Find("s3cret-c")->name, "carol");
  EXPECT_EQ(table->Find("s3cret-"), nullptr);
  EXPECT_EQ(table->Find(""), nullptr);
  EXPECT_EQ(table->Find(HashToken("s3cret-a")), nullptr) << "the hash is not the token";
}

TEST(TokenTableTest, EachBadLineIsNamedByFileAndLine) {
  const std::string good = Line("t1", "viewer", "v");
  const std::string hash = HashToken("t2");
  struct Case {
    std::string line;
    std::string error;
  } cases[] = {
      {"sha256:abc viewer", "expected 'sha256:<64 hex digits> ROLE NAME', got 2 field(s)"},
      {hash + " viewer bob extra", "got 4 field(s)"},
      {"t2 viewer bob", "the first field must be 'sha256:'"},
      {"md5:" + hash.substr(7) + " viewer bob", "the first field must be 'sha256:'"},
      {"sha256:" + hash.substr(8) + " viewer bob", "must be 64 hex digits"},
      {"sha256:" + hash.substr(8) + "g viewer bob", "must be 64 hex digits"},
      {hash + " admin bob", "unknown role 'admin' (viewer or submitter)"},
      {hash + " viewer bob/x", "the name must be 1-64 of [A-Za-z0-9._@-]"},
      {hash + " viewer " + std::string(65, 'n'), "the name must be 1-64"},
      {HashToken("t1") + " submitter other", "this hash is already listed (for v)"},
      {hash + " viewer v", "the name v is already listed"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TokenTable> table =
        TokenTable::Parse(absl::StrCat("# header\n", good, c.line, "\n"), "/etc/dfv/auth.txt");
    ASSERT_FALSE(table.ok()) << c.line;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument) << c.line;
    EXPECT_THAT(table.status().message(), HasSubstr("/etc/dfv/auth.txt:3: ")) << c.line;
    EXPECT_THAT(table.status().message(), HasSubstr(c.error)) << c.line;
  }
  // A token pasted where its hash belongs is not echoed back.
  absl::StatusOr<TokenTable> pasted = TokenTable::Parse("hunter2 viewer bob\n", "auth.txt");
  ASSERT_FALSE(pasted.ok());
  EXPECT_THAT(pasted.status().message(), Not(HasSubstr("hunter2")));

  absl::StatusOr<TokenTable> empty = TokenTable::Parse("# nothing yet\n\n", "auth.txt");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(), "auth.txt: no tokens (every client would be refused)");
  absl::StatusOr<TokenTable> missing = TokenTable::Load("/nonexistent/auth.txt");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("--auth-file: "));
}

TEST(MethodRulesTest, EveryMethodOfBothServicesHasARuleAndNoRuleIsStale) {
  const std::set<std::string> client = ServiceMethods(dfv::v1::Coordinator::service_full_name());
  const std::set<std::string> worker = ServiceMethods(dfv::v1::WorkerGateway::service_full_name());
  ASSERT_FALSE(client.empty());
  ASSERT_FALSE(worker.empty());
  for (const std::string& method : client) {
    auto rule = MethodRules().find(method);
    ASSERT_NE(rule, MethodRules().end()) << method << " has no role in server/auth.cc";
    EXPECT_EQ(rule->second.audience, Audience::kClient) << method;
  }
  for (const std::string& method : worker) {
    auto rule = MethodRules().find(method);
    ASSERT_NE(rule, MethodRules().end()) << method;
    EXPECT_EQ(rule->second.audience, Audience::kWorker) << method;
  }
  EXPECT_EQ(MethodRules().size(), client.size() + worker.size()) << "a rule names no method";
  // Only submitting (a job, or an evaluation), cancelling and removing
  // artifacts change anything.
  std::set<std::string> submitter_only;
  for (const auto& [method, rule] : MethodRules()) {
    if (rule.audience == Audience::kClient && rule.min_role == Role::kSubmitter) {
      submitter_only.insert(method);
    }
  }
  EXPECT_THAT(submitter_only, ::testing::ElementsAre("/dfv.v1.Coordinator/CancelJob",
                                                     "/dfv.v1.Coordinator/CollectGarbage",
                                                     "/dfv.v1.Coordinator/DeleteArtifacts",
                                                     "/dfv.v1.Coordinator/EvaluateCheckpoint",
                                                     "/dfv.v1.Coordinator/SubmitJob"));
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  static Authenticator Make(bool require_worker_certificate = false) {
    absl::StatusOr<TokenTable> table = TokenTable::Parse(
        Line("sub-token", "submitter", "alice") + Line("view-token", "viewer", "bob"), "auth.txt");
    EXPECT_TRUE(table.ok()) << table.status();
    return Authenticator(*table, require_worker_certificate);
  }
  static constexpr char kSubmit[] = "/dfv.v1.Coordinator/SubmitJob";
  static constexpr char kList[] = "/dfv.v1.Coordinator/ListJobs";
  static constexpr char kHeartbeat[] = "/dfv.v1.WorkerGateway/Heartbeat";
};

TEST_F(AuthenticatorTest, ClientsNeedAKnownTokenOfTheMethodsRole) {
  const Authenticator auth = Make();
  EXPECT_TRUE(auth.tokens_required());
  absl::StatusOr<CallerIdentity> caller = auth.Authorize(std::nullopt, std::nullopt, kList);
  EXPECT_TRUE(absl::IsUnauthenticated(caller.status())) << caller.status();
  EXPECT_THAT(caller.status().message(), HasSubstr("missing bearer token"));

  for (const char* malformed : {"view-token", "Bearer ", "Basic dmlldy10b2tlbg==", "bearer view-token"}) {
    caller = auth.Authorize(malformed, std::nullopt, kList);
    EXPECT_TRUE(absl::IsUnauthenticated(caller.status())) << malformed;
    EXPECT_THAT(caller.status().message(), HasSubstr("malformed authorization")) << malformed;
  }
  caller = auth.Authorize("Bearer not-a-known-token", std::nullopt, kList);
  EXPECT_TRUE(absl::IsUnauthenticated(caller.status()));
  EXPECT_EQ(caller.status().message(), "unknown token: it is not in the coordinator's auth file");

  caller = auth.Authorize("Bearer view-token", std::nullopt, kList);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->kind, CallerIdentity::Kind::kClient);
  EXPECT_EQ(caller->name, "bob");
  EXPECT_EQ(caller->role, Role::kViewer);

  caller = auth.Authorize("Bearer view-token", std::nullopt, kSubmit);
  EXPECT_TRUE(absl::IsPermissionDenied(caller.status())) << caller.status();
  EXPECT_EQ(caller.status().message(), "SubmitJob needs role submitter; token 'bob' has role viewer");
  EXPECT_THAT(caller.status().message(), Not(HasSubstr("view-token")));

  caller = auth.Authorize("Bearer sub-token", std::nullopt, kSubmit);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->role, Role::kSubmitter);
  EXPECT_TRUE(auth.Authorize("Bearer sub-token", std::nullopt, kList).ok());

  caller = auth.Authorize("Bearer sub-token", std::nullopt, "/dfv.v1.Coordinator/DropTables");
  EXPECT_TRUE(absl::IsPermissionDenied(caller.status()));
  EXPECT_THAT(caller.status().message(), HasSubstr("no access rule"));
}

TEST_F(AuthenticatorTest, WithoutAnAuthFileClientsNeedNoToken) {
  const Authenticator open(std::nullopt, /*require_worker_certificate=*/false);
  EXPECT_FALSE(open.tokens_required());
  for (std::optional<absl::string_view> authorization :
       {std::optional<absl::string_view>(), std::optional<absl::string_view>("Bearer anything")}) {
    absl::StatusOr<CallerIdentity> caller = open.Authorize(authorization, std::nullopt, kSubmit);
    ASSERT_TRUE(caller.ok()) << caller.status();
    EXPECT_EQ(caller->kind, CallerIdentity::Kind::kOpen);
    EXPECT_TRUE(open.Authorize(authorization, std::nullopt, kHeartbeat).ok());
  }
}

TEST_F(AuthenticatorTest, TheWorkerServiceTakesWorkersNotClientTokens) {
  const Authenticator auth = Make();
  for (const char* token : {"Bearer sub-token", "Bearer view-token", "Bearer unknown"}) {
    absl::StatusOr<CallerIdentity> caller = auth.Authorize(token, std::nullopt, kHeartbeat);
    EXPECT_TRUE(absl::IsPermissionDenied(caller.status())) << token << caller.status();
    EXPECT_THAT(caller.status().message(), HasSubstr("a client token may not call it"));
    EXPECT_TRUE(absl::IsPermissionDenied(
        auth.Authorize(token, std::string("w1"), kHeartbeat).status()))
        << "a certificate does not make a token acceptable";
  }
  // Without TLS workers have no certificate and no token: as before.
  absl::StatusOr<CallerIdentity> caller = auth.Authorize(std::nullopt, std::nullopt, kHeartbeat);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->kind, CallerIdentity::Kind::kWorker);
  EXPECT_FALSE(caller->certified);
  // With one, the worker is who its certificate says.
  caller = auth.Authorize(std::nullopt, std::string("gpu-7"), kHeartbeat);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_TRUE(caller->certified);
  EXPECT_EQ(caller->name, "gpu-7");
  // A worker's certificate does not open the client service.
  EXPECT_TRUE(absl::IsUnauthenticated(
      auth.Authorize(std::nullopt, std::string("gpu-7"), kList).status()));

  const Authenticator strict = Make(/*require_worker_certificate=*/true);
  caller = strict.Authorize(std::nullopt, std::nullopt, kHeartbeat);
  EXPECT_TRUE(absl::IsUnauthenticated(caller.status())) << caller.status();
  EXPECT_EQ(caller.status().message(),
            "Heartbeat: the worker service needs a verified client certificate");
  EXPECT_TRUE(strict.Authorize(std::nullopt, std::string("gpu-7"), kHeartbeat).ok());
}

TEST(CheckWorkerNameTest, ACertifiedWorkerRegistersOnlyUnderItsCertificatesName) {
  CallerIdentity certified;
  certified.kind = CallerIdentity::Kind::kWorker;
  certified.name = "gpu-7";
  certified.certified = true;
  EXPECT_TRUE(CheckWorkerName(certified, "gpu-7").ok());
  absl::Status status = CheckWorkerName(certified, "gpu-8");
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_EQ(status.message(),
            "name: a worker whose certificate names 'gpu-7' may register only as that, not as "
            "'gpu-8'");
  CallerIdentity loopback;
  loopback.kind = CallerIdentity::Kind::kWorker;
  EXPECT_TRUE(CheckWorkerName(loopback, "anything").ok());
}

TEST(TokensScriptTest, MakesPrivateTokenFilesThatTheAuthFileAccepts) {
  const std::string dir = testing::FreshDir("tokens_sh");
  const std::string command =
      absl::StrCat("bash ", DFV_SOURCE_DIR, "/deploy/tokens.sh ", dir, "/tokens >/dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  absl::StatusOr<TokenTable> table = TokenTable::Load(dir + "/tokens/auth.txt");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->entries().size(), 2u);
  std::set<std::string> tokens;
  for (const auto& [role, want] : {std::pair{"submitter", Role::kSubmitter},
                                   std::pair{"viewer", Role::kViewer}}) {
    const std::string path = absl::StrCat(dir, "/tokens/", role, ".token");
    EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)
        << path;
    absl::StatusOr<std::string> token = rpc::ReadTokenFile(path);
    ASSERT_TRUE(token.ok()) << token.status();
    EXPECT_EQ(token->size(), 64u);  // openssl rand -hex 32
    tokens.insert(*token);
    const TokenEntry* entry = table->Find(*token);
    ASSERT_NE(entry, nullptr) << role;
    EXPECT_EQ(entry->role, want);
  }
  EXPECT_EQ(tokens.size(), 2u);
  // Run again: the tokens stay (clients keep working), auth.txt is remade.
  ASSERT_EQ(std::system(command.c_str()), 0);
  absl::StatusOr<std::string> again = rpc::ReadTokenFile(dir + "/tokens/viewer.token");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(tokens.count(*again), 1u);
}

TEST(BearerTokenTest, TheFirstNonEmptyLineIsTheToken) {
  absl::StatusOr<std::string> token = rpc::TokenFromText("\n  \n  abc123  \nsecond\n", "f");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "abc123");
  EXPECT_EQ(rpc::TokenFromText("", "token file t").status().message(),
            "token file t: no token (the file is empty)");
  EXPECT_TRUE(absl::IsInvalidArgument(rpc::TokenFromText("two words\n", "f").status()));
  EXPECT_THAT(rpc::TokenFromText("two words\n", "f").status().message(), Not(HasSubstr("two")));
  EXPECT_TRUE(absl::IsInvalidArgument(rpc::TokenFromText("caf\xc3\xa9\n", "f").status()));
  EXPECT_TRUE(absl::IsNotFound(rpc::ReadTokenFile("/nonexistent/t.token").status()));
}

}  // namespace
}  // namespace dfv::server
