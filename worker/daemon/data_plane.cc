#include "worker/daemon/data_plane.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dfv::daemon {

absl::StatusOr<std::string> InterfaceIpv4Address(const std::string& name) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return absl::InternalError(absl::StrCat("getifaddrs: ", std::strerror(errno)));
  std::string found;
  std::set<std::string> with_ipv4;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    with_ipv4.insert(i->ifa_name);
    if (!found.empty() || name != i->ifa_name) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* address = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text)) != nullptr) found = text;
  }
  ::freeifaddrs(list);
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("--data-plane-interface: no IPv4 address on interface '", name,
                                            "' (interfaces with one: ", absl::StrJoin(with_ipv4, ", "), ")"));
  }
  return found;
}

}  // namespace dfv::daemon
