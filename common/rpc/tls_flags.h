// The TLS flags of both daemons, defined once: --tls-cert, --tls-key,
// --tls-ca, --tls-refresh and --insecure (see tls.h for what they do).
// Header-only, for the mains, which link CLI11.
#ifndef DFV_COMMON_RPC_TLS_FLAGS_H_
#define DFV_COMMON_RPC_TLS_FLAGS_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/rpc/tls.h"

namespace dfv::rpc {

// Adds the flags to `app`, writing `tls` and `insecure` (which must outlive
// the parse). `cert_help` and `ca_help` say what the certificate and the CA
// are for on this daemon.
inline void AddTlsFlags(CLI::App& app, TlsFiles& tls, bool& insecure, const std::string& cert_help,
                        const std::string& ca_help) {
  app.add_option("--tls-cert", tls.cert, cert_help);
  app.add_option("--tls-key", tls.key, "the private key of --tls-cert (PEM, unencrypted)");
  app.add_option("--tls-ca", tls.ca, ca_help);
  app.add_option_function<double>(
         "--tls-refresh", [&tls](double seconds) { tls.refresh_interval = absl::Seconds(seconds); },
         "seconds between re-reads of the TLS files (renewed files need no restart)")
      ->default_str(absl::StrCat(absl::ToDoubleSeconds(tls.refresh_interval)))
      ->check(CLI::Range(1.0, 86400.0));
  app.add_flag("--insecure", insecure,
               "allow a non-loopback --listen (and --metrics-listen) without TLS: plaintext, anyone who "
               "can reach the port can act");
}

}  // namespace dfv::rpc

#endif  // DFV_COMMON_RPC_TLS_FLAGS_H_
