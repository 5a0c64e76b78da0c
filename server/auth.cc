#include "server/auth.h"

#include <google/protobuf/descriptor.h>
#include <grpc/grpc_security_constants.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/rpc/bearer_token.h"
#include "common/rpc/tls.h"
#include "proto/dfv.grpc.pb.h"

namespace dfv::server {
namespace {

constexpr char kHashPrefix[] = "sha256:";
constexpr size_t kMaxNameBytes = 64;

// The least role each client method needs. Every method of
// dfv.v1.Coordinator must be here (auth_test checks it against the proto).
constexpr struct {
  const char* method;
  Role role;
} kClientMethodRoles[] = {
    {"SubmitJob", Role::kSubmitter},   {"CancelJob", Role::kSubmitter},
    {"GetJob", Role::kViewer},         {"ListJobs", Role::kViewer},
    {"WatchJob", Role::kViewer},       {"ListArtifacts", Role::kViewer},
    {"GetArtifact", Role::kViewer},    {"ListWorkers", Role::kViewer},
    {"DeleteArtifacts", Role::kSubmitter}, {"CollectGarbage", Role::kSubmitter},
    {"EvaluateCheckpoint", Role::kSubmitter},
};

std::string FullMethod(absl::string_view service, absl::string_view method) {
  return absl::StrCat("/", service, "/", method);
}

std::map<std::string, MethodRule, std::less<>> BuildRules() {
  std::map<std::string, MethodRule, std::less<>> rules;
  for (const auto& entry : kClientMethodRoles) {
    rules[FullMethod(dfv::v1::Coordinator::service_full_name(), entry.method)] =
        MethodRule{Audience::kClient, entry.role};
  }
  // The whole worker service is for workers: derived, so a new worker
  // method cannot be forgotten.
  const google::protobuf::ServiceDescriptor* gateway =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          dfv::v1::WorkerGateway::service_full_name());
  if (gateway != nullptr) {
    for (int i = 0; i < gateway->method_count(); ++i) {
      rules[FullMethod(gateway->full_name(), gateway->method(i)->name())] =
          MethodRule{Audience::kWorker, Role::kViewer};
    }
  }
  return rules;
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
         c == '@';
}

absl::string_view MethodName(absl::string_view full_method) {
  const size_t slash = full_method.rfind('/');
  return slash == absl::string_view::npos ? full_method : full_method.substr(slash + 1);
}

std::array<uint8_t, 32> Sha256(absl::string_view data) {
  std::array<uint8_t, 32> digest{};
  static_assert(SHA256_DIGEST_LENGTH == 32);
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kSubmitter:
      return "submitter";
  }
  return "unknown";
}

const std::map<std::string, MethodRule, std::less<>>& MethodRules() {
  static const auto* const rules =
      new std::map<std::string, MethodRule, std::less<>>(BuildRules());
  return *rules;
}

std::string HashToken(absl::string_view token) {
  const std::array<uint8_t, 32> digest = Sha256(token);
  return absl::StrCat(kHashPrefix,
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(digest.data()), digest.size())));
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text, const std::string& source) {
  TokenTable table;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    auto bad = [&](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": ", what));
    };
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 3) {
      return bad(absl::StrCat("expected 'sha256:<64 hex digits> ROLE NAME', got ", fields.size(),
                              " field(s)"));
    }
    absl::string_view hash = fields[0];
    if (!absl::ConsumePrefix(&hash, kHashPrefix)) {
      // Said without quoting the field: it may be a token pasted by mistake.
      return bad("the first field must be 'sha256:' and the token's SHA-256 in hex "
                 "(dfv-coordinator hash-token makes it); it is not");
    }
    if (hash.size() != 64 ||
        !std::all_of(hash.begin(), hash.end(),
                     [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); })) {
      return bad("the hash after 'sha256:' must be 64 hex digits");
    }
    TokenEntry entry;
    const std::string bytes = absl::HexStringToBytes(absl::AsciiStrToLower(hash));
    std::copy(bytes.begin(), bytes.end(), entry.digest.begin());
    if (fields[1] == "viewer") {
      entry.role = Role::kViewer;
    } else if (fields[1] == "submitter") {
      entry.role = Role::kSubmitter;
    } else {
      return bad(absl::StrCat("unknown role '", fields[1].substr(0, kMaxNameBytes),
                              "' (viewer or submitter)"));
    }
    if (fields[2].size() > kMaxNameBytes ||
        !std::all_of(fields[2].begin(), fields[2].end(), IsNameChar)) {
      return bad(absl::StrCat("the name must be 1-", kMaxNameBytes, " of [A-Za-z0-9._@-]"));
    }
    entry.name = std::string(fields[2]);
    for (const TokenEntry& other : table.entries_) {
      if (other.digest == entry.digest) {
        return bad(absl::StrCat("this hash is already listed (for ", other.name, ")"));
      }
      if (other.name == entry.name) {
        return bad(absl::StrCat("the name ", entry.name, " is already listed"));
      }
    }
    table.entries_.push_back(std::move(entry));
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no tokens (every client would be refused)"));
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("--auth-file: ", text.status().message()));
  }
  return Parse(*text, path);
}

const TokenEntry* TokenTable::Find(absl::string_view token) const {
  const std::array<uint8_t, 32> digest = Sha256(token);
  const TokenEntry* found = nullptr;
  // Every entry is compared, without an early exit, so the time taken says
  // nothing about which entry (if any) matched or how much of a hash did.
  for (const TokenEntry& entry : entries_) {
    const bool equal = CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0;
    if (equal) found = &entry;
  }
  return found;
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(const AuthOptions& options) {
  std::optional<TokenTable> tokens;
  if (!options.auth_file.empty()) {
    absl::StatusOr<TokenTable> loaded = TokenTable::Load(options.auth_file);
    if (!loaded.ok()) return loaded.status();
    tokens = std::move(*loaded);
  }
  return std::make_unique<Authenticator>(std::move(tokens), options.require_worker_certificate);
}

Authenticator::Authenticator(std::optional<TokenTable> tokens, bool require_worker_certificate)
    : tokens_(std::move(tokens)), require_worker_certificate_(require_worker_certificate) {}

absl::StatusOr<CallerIdentity> Authenticator::Authorize(const grpc::ServerContextBase& context,
                                                        absl::string_view full_method) const {
  std::optional<absl::string_view> authorization;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(rpc::kAuthorizationKey);
  if (it != metadata.end()) authorization = absl::string_view(it->second.data(), it->second.size());
  std::optional<std::string> certificate_name;
  if (std::shared_ptr<const grpc::AuthContext> auth = context.auth_context()) {
    absl::StatusOr<std::string> name = rpc::PeerCertificateIdentity(*auth);
    if (name.ok()) certificate_name = std::move(*name);
  }
  return Authorize(authorization, std::move(certificate_name), full_method);
}

absl::StatusOr<CallerIdentity> Authenticator::Authorize(
    std::optional<absl::string_view> authorization, std::optional<std::string> certificate_name,
    absl::string_view full_method) const {
  auto rule = MethodRules().find(full_method);
  if (rule == MethodRules().end()) {
    return absl::PermissionDeniedError(
        absl::StrCat("no access rule for ", full_method.substr(0, 256)));
  }
  CallerIdentity caller;
  if (rule->second.audience == Audience::kWorker) {
    if (tokens_.has_value() && authorization.has_value()) {
      return absl::PermissionDeniedError(absl::StrCat(
          MethodName(full_method), ": the worker service takes workers only (they identify by "
          "their certificate); a client token may not call it"));
    }
    caller.kind = CallerIdentity::Kind::kWorker;
    if (certificate_name.has_value()) {
      caller.name = std::move(*certificate_name);
      caller.certified = true;
    } else if (require_worker_certificate_) {
      return absl::UnauthenticatedError(absl::StrCat(
          MethodName(full_method), ": the worker service needs a verified client certificate"));
    }
    return caller;
  }
  if (!tokens_.has_value()) return caller;  // kOpen: no auth file, as before
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "missing bearer token: this coordinator requires 'authorization: Bearer <token>' "
        "(dfvctl --token-file or DFV_TOKEN_FILE)");
  }
  absl::string_view token = *authorization;
  if (!absl::ConsumePrefix(&token, rpc::kBearerPrefix) || token.empty()) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata: expected 'Bearer <token>'");
  }
  const TokenEntry* entry = tokens_->Find(token);
  if (entry == nullptr) {
    return absl::UnauthenticatedError("unknown token: it is not in the coordinator's auth file");
  }
  if (entry->role < rule->second.min_role) {
    return absl::PermissionDeniedError(absl::StrCat(
        MethodName(full_method), " needs role ", RoleName(rule->second.min_role), "; token '",
        entry->name, "' has role ", RoleName(entry->role)));
  }
  caller.kind = CallerIdentity::Kind::kClient;
  caller.name = entry->name;
  caller.role = entry->role;
  return caller;
}

absl::Status CheckWorkerName(const CallerIdentity& caller, absl::string_view name) {
  if (!caller.certified || caller.name == name) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("name: a worker whose certificate names '", caller.name,
                   "' may register only as that, not as '", name.substr(0, 128), "'"));
}

}  // namespace dfv::server
