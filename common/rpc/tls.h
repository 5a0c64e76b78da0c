// TLS for dfv's gRPC channels: the one place that turns certificate files
// into gRPC credentials, says who a TLS peer is, and decides which listen
// addresses a daemon may use.
//
// The design, in short:
// - One coordinator port serves both dfvctl and the worker daemons. Its TLS
//   server REQUESTS a client certificate and VERIFIES it against the cluster
//   CA when one is presented (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY):
//   dfvctl presents none and authenticates with a bearer token; a worker
//   presents its certificate, and one signed by another CA fails the
//   handshake. The worker-facing service then demands a verified
//   certificate per call (PeerCertificateIdentity). One port rather than a
//   separate worker port keeps one address to publish, one firewall rule and
//   one server; the handshake already refuses foreign certificates, and the
//   per-service check decides what a certificate-less caller may do.
// - Rotation without a restart: every credential reads its files through
//   gRPC's FileWatcherCertificateProvider, which re-reads them every
//   TlsFiles::refresh_interval; new handshakes use the new files, open
//   connections keep the session they have. Replace the certificate and key
//   with renames (each file atomic); a handshake in the short window
//   between the two renames may fail and is retried by gRPC.
// - Without TLS, daemons listen on loopback only; --insecure allows other
//   addresses in plaintext with a warning (CheckListenAddress).
#ifndef DFV_COMMON_RPC_TLS_H_
#define DFV_COMMON_RPC_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/rpc.h"

namespace dfv::rpc {

// PEM files for one process's TLS side; paths, empty when not given. All
// empty: plaintext (today's behaviour).
struct TlsFiles {
  // This process's certificate chain (--tls-cert).
  std::string cert;
  // The private key of `cert`, unencrypted (--tls-key).
  std::string key;
  // The cluster CA bundle that signs the peers' certificates (--tls-ca).
  std::string ca;
  // Client side only: the name checked against the server certificate's
  // subject alternative names instead of the host of the dialled address
  // (--tls-server-name). Empty: the address's host.
  std::string server_name;
  // How often the files are re-read, so renewed files take effect without a
  // restart. Whole seconds, at least 1 (rounded up).
  absl::Duration refresh_interval = absl::Seconds(60);

  // True when nothing is given (plaintext); a server_name alone is not
  // empty, so it is refused (it needs ca) rather than ignored.
  bool empty() const { return cert.empty() && key.empty() && ca.empty() && server_name.empty(); }
};

// Checks `files` once, so a mistake is reported at start rather than as
// failing handshakes: cert and key come together; `require_identity`
// demands them, `require_ca` demands ca; server_name needs ca. Each file
// given must be readable and hold PEM of its kind (the key unencrypted and
// matching the certificate). INVALID_ARGUMENT naming the flag (and the file
// when one is at fault).
absl::Status ValidateTlsFiles(const TlsFiles& files, bool require_identity, bool require_ca);

// What a TLS server asks of its clients.
enum class ClientCertificates {
  // None asked for (the worker's health service).
  kNotRequested,
  // Requested; when one is presented it must be signed by files.ca, or the
  // handshake fails (the coordinator's port: workers present one, dfvctl
  // does not). Needs files.ca.
  kRequestedAndVerified,
};

// Server credentials: plaintext when `files` is empty, otherwise TLS with
// files.cert/key (required) and the client-certificate rule, reloaded every
// refresh_interval. INVALID_ARGUMENT as ValidateTlsFiles.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& files,
                                                                             ClientCertificates clients);

// Channel credentials: plaintext when `files` is empty, otherwise TLS that
// trusts files.ca (required) only and checks the server's name, presenting
// files.cert/key when given (a worker's client certificate).
// INVALID_ARGUMENT as ValidateTlsFiles.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const TlsFiles& files);

// MakeChannel(address) over MakeChannelCredentials(files), with
// files.server_name as the name the server's certificate must carry.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address, const TlsFiles& files);

// The identity of the caller as its verified TLS client certificate states
// it: the certificate subject's common name (CN), which deploy/certs.sh sets
// to the worker's name. NOT_FOUND when the call came without a client
// certificate (plaintext, or TLS without one). The certificate is known to
// be verified: the coordinator's server fails any handshake whose presented
// certificate does not chain to the cluster CA.
absl::StatusOr<std::string> PeerCertificateIdentity(const grpc::AuthContext& context);
absl::StatusOr<std::string> PeerCertificateIdentity(const grpc::ServerContextBase& context);

// The loopback rule for a server's listen address.
struct ListenRule {
  // The port serves TLS.
  bool tls = false;
  // --insecure: plaintext on any address, with a warning.
  bool insecure = false;
  // The server can serve TLS at all (gRPC yes, /metrics no); only shapes
  // the advice in the error.
  bool tls_supported = true;
};

// How a listen address that CheckListenAddress allowed is exposed.
enum class ListenExposure {
  kTls,                // TLS, any address
  kLoopback,           // plaintext on loopback: only this machine can connect
  kInsecurePlaintext,  // plaintext on another address because of --insecure
};

// Decides whether a server may listen on `listen`: a loopback host always;
// another host with TLS, or in plaintext with --insecure.
// INVALID_ARGUMENT naming `flag` otherwise ("no TLS configured: --listen must
// be a loopback address (got 0.0.0.0); ...").
absl::StatusOr<ListenExposure> CheckListenAddress(const HostPort& listen, const std::string& flag,
                                                  const ListenRule& rule);

// What a daemon's gRPC port needs before it binds: the parsed --listen
// address, how it is exposed and the server credentials.
struct ServerListen {
  HostPort address;
  ListenExposure exposure = ListenExposure::kLoopback;
  std::shared_ptr<grpc::ServerCredentials> credentials;
};

// Parses `listen` (the --listen flag), applies the listen rule for `tls` and
// `insecure`, and makes the credentials (checking the TLS files, so bad ones
// fail the start before anything is opened). The errors of ParseHostPort,
// CheckListenAddress and MakeServerCredentials.
absl::StatusOr<ServerListen> PrepareServerListen(const std::string& listen, const TlsFiles& tls, bool insecure,
                                                 ClientCertificates client_certificates);

// For a daemon's start-up line: "TLS", "plaintext, loopback only" or
// "PLAINTEXT, --insecure".
std::string DescribeExposure(ListenExposure exposure);

// The warning a daemon logs at start for kInsecurePlaintext (and for a
// non-loopback /metrics address allowed by --insecure).
std::string InsecureListenWarning(const std::string& flag, const std::string& address);

}  // namespace dfv::rpc

#endif  // DFV_COMMON_RPC_TLS_H_
