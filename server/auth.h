// Who may call what on the coordinator: bearer tokens with roles for
// clients, certificate identities for workers, and the one table of the
// role each method needs.
//
// Clients (the dfv.v1.Coordinator service) send "authorization: Bearer
// <token>". The coordinator's auth file (--auth-file) lists the tokens it
// accepts, hashed, one per line:
//
//   # comment
//   sha256:<64 hex digits: SHA-256 of the token> ROLE NAME
//
// ROLE is `viewer` (every read: jobs, events, artifacts, workers) or
// `submitter` (also the calls that queue, cancel or remove something:
// SubmitJob, EvaluateCheckpoint, CancelJob, ...; auth.cc lists every
// method's role); NAME (1-64 of [A-Za-z0-9._@-]) says whose token it is
// in logs and errors. Tokens themselves are never stored, logged or quoted
// in errors; a presented token is hashed and compared with every entry in
// constant time (CRYPTO_memcmp).
//
// Workers (the dfv.v1.WorkerGateway service) carry no token. Their identity
// is the common name of their verified client certificate when TLS is on
// (rpc::PeerCertificateIdentity). A call there with a bearer token is a client's
// and is refused. Without a certificate the worker service stays open as
// before (the coordinator listens on loopback only without TLS), unless
// require_worker_certificate.
//
// Without an auth file clients need no token: every client call is allowed,
// as before.
//
// Thread-safety: an Authenticator is immutable after Create; all methods
// are thread-safe.
#ifndef DFV_SERVER_AUTH_H_
#define DFV_SERVER_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dfv::server {

// Client roles, each allowed what the ones before it are.
enum class Role {
  kViewer = 0,
  kSubmitter = 1,
};
// "viewer", "submitter".
const char* RoleName(Role role);

// Which callers a method is for.
enum class Audience {
  kClient,  // dfv.v1.Coordinator: needs a token of at least min_role
  kWorker,  // dfv.v1.WorkerGateway: workers only
};

struct MethodRule {
  Audience audience = Audience::kClient;
  Role min_role = Role::kViewer;  // clients only
};

// The rule of every method of both services, by gRPC's full method name
// ("/dfv.v1.Coordinator/SubmitJob"). The client methods' roles are listed
// in auth.cc; every WorkerGateway method (from the proto descriptor) is for
// workers. Built once; tests check it covers the services exactly.
const std::map<std::string, MethodRule, std::less<>>& MethodRules();

// The "sha256:<hex>" form of `token` an auth file holds.
std::string HashToken(absl::string_view token);

// One line of an auth file.
struct TokenEntry {
  std::array<uint8_t, 32> digest{};  // SHA-256 of the token
  Role role = Role::kViewer;
  std::string name;
};

// The tokens of an auth file. Copyable, immutable.
class TokenTable {
 public:
  // Parses an auth file's text. INVALID_ARGUMENT "SOURCE:LINE: ..." for the
  // first bad line (not three fields, not sha256:<64 hex>, unknown role, bad
  // name, a hash or name listed twice), or when there is no token at all.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text, const std::string& source);
  // Reads and parses `path`; a file that cannot be read keeps its error code.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The entry whose hash is `token`'s, or nullptr. Compares against every
  // entry in constant time, whether or not one matched earlier.
  const TokenEntry* Find(absl::string_view token) const;

  const std::vector<TokenEntry>& entries() const { return entries_; }

 private:
  std::vector<TokenEntry> entries_;
};

// Who is calling, as the Authenticator decided. Handlers read it from
// Authenticator::Authorize and from nowhere else.
struct CallerIdentity {
  enum class Kind {
    kOpen,    // a client call with no auth file configured: anyone
    kClient,  // a client with a known token
    kWorker,  // a call of the worker service
  };
  Kind kind = Kind::kOpen;
  // kClient: the token's name. kWorker: the certificate's common name, ""
  // without a verified certificate.
  std::string name;
  Role role = Role::kViewer;  // kClient only
  // kWorker: `name` comes from a verified client certificate, so the worker
  // may act only as the worker of that name.
  bool certified = false;
};

struct AuthOptions {
  // The auth file (see above); empty: clients need no token.
  std::string auth_file;
  // Worker calls without a verified client certificate are refused
  // (UNAUTHENTICATED). Set when the server runs TLS with client
  // certificates; without TLS there are none to require.
  bool require_worker_certificate = false;
};

class Authenticator {
 public:
  // Loads the auth file when one is named (its errors, see TokenTable).
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(const AuthOptions& options);
  // From an already parsed table (nullopt: no client authentication).
  Authenticator(std::optional<TokenTable> tokens, bool require_worker_certificate);

  // Whether clients need tokens.
  bool tokens_required() const { return tokens_.has_value(); }

  // Decides whether the caller of `context` may call `full_method`
  // ("/dfv.v1.Coordinator/SubmitJob"), reading the authorization metadata
  // and the peer's certificate. See the overload below.
  absl::StatusOr<CallerIdentity> Authorize(const grpc::ServerContextBase& context,
                                           absl::string_view full_method) const;

  // The decision from the call's parts: `authorization` is the metadata
  // value (nullopt when absent), `certificate_name` the peer's verified
  // certificate CN (nullopt when none).
  // - Client methods with tokens required: UNAUTHENTICATED for a missing,
  //   malformed or unknown token; PERMISSION_DENIED naming the role needed
  //   when the token's role is below the method's.
  // - Worker methods: PERMISSION_DENIED for a call with a bearer token (with
  //   tokens required); UNAUTHENTICATED without a certificate when
  //   require_worker_certificate.
  // - PERMISSION_DENIED for a method with no rule (none of dfv's).
  absl::StatusOr<CallerIdentity> Authorize(std::optional<absl::string_view> authorization,
                                           std::optional<std::string> certificate_name,
                                           absl::string_view full_method) const;

 private:
  const std::optional<TokenTable> tokens_;
  const bool require_worker_certificate_;
};

// RegisterWorker's check: a worker with a certificate registers only under
// the certificate's name. PERMISSION_DENIED naming both otherwise; OK for
// callers without a certificate.
absl::Status CheckWorkerName(const CallerIdentity& caller, absl::string_view name);

}  // namespace dfv::server

#endif  // DFV_SERVER_AUTH_H_
