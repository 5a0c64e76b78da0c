#include "common/rpc/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dfv::rpc {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

absl::Status Invalid(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
}

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return Invalid(flag, absl::StrCat("cannot read ", path, ": ", text.status().message()));
  return text;
}

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& text) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The first certificate in `path`.
absl::StatusOr<X509Ptr> ReadCertificate(const std::string& flag, const std::string& path) {
  DFV_ASSIGN_OR_RETURN(std::string text, ReadPem(flag, path));
  auto bio = MemoryBio(text);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) return Invalid(flag, absl::StrCat(path, " holds no PEM certificate"));
  return cert;
}

// Refuses to prompt for a pass phrase: dfv reads keys unattended.
int NoPassphrase(char*, int, int, void*) { return -1; }

absl::StatusOr<KeyPtr> ReadPrivateKey(const std::string& flag, const std::string& path) {
  DFV_ASSIGN_OR_RETURN(std::string text, ReadPem(flag, path));
  auto bio = MemoryBio(text);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return Invalid(flag, absl::StrCat(path, " holds no unencrypted PEM private key"));
  }
  return key;
}

// FileWatcherCertificateProvider takes whole seconds.
unsigned int RefreshSeconds(absl::Duration interval) {
  const double seconds = std::ceil(absl::ToDoubleSeconds(interval));
  return seconds < 1 ? 1u : static_cast<unsigned int>(seconds);
}

}  // namespace

absl::Status ValidateTlsFiles(const TlsFiles& files, bool require_identity, bool require_ca) {
  if (!files.cert.empty() && files.key.empty()) return Invalid("--tls-key", "required with --tls-cert");
  if (files.cert.empty() && !files.key.empty()) return Invalid("--tls-cert", "required with --tls-key");
  if (!files.server_name.empty() && files.ca.empty()) {
    return Invalid("--tls-server-name", "needs --tls-ca");
  }
  if (require_identity && files.cert.empty()) {
    return Invalid("--tls-cert", "required with TLS (give --tls-cert and --tls-key)");
  }
  if (require_ca && files.ca.empty()) {
    return Invalid("--tls-ca", "required with TLS (the cluster CA that signs the peers' certificates)");
  }
  if (files.refresh_interval <= absl::ZeroDuration()) {
    return Invalid("--tls-refresh", "must be positive");
  }
  if (!files.cert.empty()) {
    DFV_ASSIGN_OR_RETURN(X509Ptr cert, ReadCertificate("--tls-cert", files.cert));
    DFV_ASSIGN_OR_RETURN(KeyPtr key, ReadPrivateKey("--tls-key", files.key));
    const bool match = X509_check_private_key(cert.get(), key.get()) == 1;
    ERR_clear_error();
    if (!match) {
      return Invalid("--tls-key", absl::StrCat(files.key, " is not the key of the certificate in ", files.cert));
    }
  }
  if (!files.ca.empty()) {
    DFV_RETURN_IF_ERROR(ReadCertificate("--tls-ca", files.ca).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& files,
                                                                             ClientCertificates clients) {
  if (files.empty()) return grpc::InsecureServerCredentials();
  const bool verify_clients = clients == ClientCertificates::kRequestedAndVerified;
  DFV_RETURN_IF_ERROR(ValidateTlsFiles(files, /*require_identity=*/true, /*require_ca=*/verify_clients));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, verify_clients ? files.ca : "", RefreshSeconds(files.refresh_interval));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (verify_clients) {
    options.watch_root_certs();
    // Not REQUIRE: dfvctl comes without a certificate on the same port (see
    // the header); one that is presented must verify.
    options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const TlsFiles& files) {
  if (files.empty()) return grpc::InsecureChannelCredentials();
  DFV_RETURN_IF_ERROR(ValidateTlsFiles(files, /*require_identity=*/false, /*require_ca=*/true));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.ca, RefreshSeconds(files.refresh_interval));
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  if (!files.cert.empty()) options.watch_identity_key_cert_pairs();
  // Trust the cluster CA only (not the system's roots) and check that the
  // server's certificate names the host dialled (or server_name).
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address, const TlsFiles& files) {
  DFV_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials, MakeChannelCredentials(files));
  grpc::ChannelArguments args = DefaultChannelArguments();
  if (!files.server_name.empty()) args.SetSslTargetNameOverride(files.server_name);
  return grpc::CreateCustomChannel(address, credentials, args);
}

absl::StatusOr<std::string> PeerCertificateIdentity(const grpc::AuthContext& context) {
  if (!context.IsPeerAuthenticated()) return absl::NotFoundError("the caller presented no client certificate");
  // "tls" from the TlsServerCredentials the daemons use, "ssl" from SslServerCredentials.
  std::vector<grpc::string_ref> type = context.FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  const std::string transport = type.empty() ? "" : std::string(type.front().data(), type.front().size());
  if (transport != GRPC_TLS_TRANSPORT_SECURITY_TYPE && transport != GRPC_SSL_TRANSPORT_SECURITY_TYPE) {
    return absl::NotFoundError("the caller did not connect with TLS");
  }
  std::vector<grpc::string_ref> names = context.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (names.empty() || names.front().empty()) {
    return absl::NotFoundError("the caller's certificate has no common name");
  }
  return std::string(names.front().data(), names.front().size());
}

absl::StatusOr<std::string> PeerCertificateIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return absl::NotFoundError("the caller presented no client certificate");
  return PeerCertificateIdentity(*auth);
}

absl::StatusOr<ListenExposure> CheckListenAddress(const HostPort& listen, const std::string& flag,
                                                  const ListenRule& rule) {
  if (rule.tls) return ListenExposure::kTls;
  if (IsLoopbackHost(listen.host)) return ListenExposure::kLoopback;
  if (rule.insecure) return ListenExposure::kInsecurePlaintext;
  return absl::InvalidArgumentError(absl::StrCat(
      "no TLS configured: ", flag, " must be a loopback address (got ", listen.host, "); ",
      rule.tls_supported ? "give --tls-cert, --tls-key and --tls-ca, or " : "",
      "pass --insecure to serve plaintext to anyone who can reach the port"));
}

std::string DescribeExposure(ListenExposure exposure) {
  switch (exposure) {
    case ListenExposure::kLoopback:
      return "plaintext, loopback only";
    case ListenExposure::kTls:
      return "TLS";
    case ListenExposure::kInsecurePlaintext:
      return "PLAINTEXT, --insecure";
  }
  return "unknown";
}

std::string InsecureListenWarning(const std::string& flag, const std::string& address) {
  return absl::StrCat(flag, " ", address,
                      ": serving PLAINTEXT on a non-loopback address (--insecure): anyone who can reach "
                      "this port can use it unauthenticated and read what it carries");
}

absl::StatusOr<ServerListen> PrepareServerListen(const std::string& listen, const TlsFiles& tls, bool insecure,
                                                 ClientCertificates client_certificates) {
  ServerListen result;
  DFV_ASSIGN_OR_RETURN(result.address, ParseHostPort(listen, "--listen"));
  ListenRule rule;
  rule.tls = !tls.empty();
  rule.insecure = insecure;
  DFV_ASSIGN_OR_RETURN(result.exposure, CheckListenAddress(result.address, "--listen", rule));
  DFV_ASSIGN_OR_RETURN(result.credentials, MakeServerCredentials(tls, client_certificates));
  return result;
}

}  // namespace dfv::rpc
