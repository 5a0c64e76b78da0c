// Separate network stacks on one machine for multi-host tests: a "switch"
// namespace holding a Linux bridge, and one namespace per host (with a host
// name of its own for what runs there), each joined
// to the bridge by a veth pair and given an address from 198.18.0.0/24
// (198.18.0.0/15 is reserved for network benchmarking, RFC 2544; no other
// address is ever used). The bridge lives in its own namespace, so the host's
// firewall (e.g. dockerd's FORWARD DROP with br_netfilter) never sees the
// traffic and nothing outside the lab is changed.
//
//   DFV_ASSIGN_OR_RETURN(auto lab, NetnsLab::Create({"coord", "w1", "w2"}));
//   argv = lab->Exec("w1", {"/path/dfv-worker", "--coordinator", lab->Address("coord") + ":7070"});
//   lab->Cut("w1");      // its link goes down: it can reach no one, no one reaches it
//   lab->Restore("w1");
//
// Everything is deleted when the lab is destroyed (also when a test fails);
// processes still running in a namespace must be stopped first by the test.
// Needs root and iproute2: Create says why not otherwise (tests skip then).
#ifndef DFV_TESTS_INTEGRATION_NETNS_LAB_H_
#define DFV_TESTS_INTEGRATION_NETNS_LAB_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dfv::testing {

class NetnsLab {
 public:
  // Creates the switch and one namespace per host (names unique to this
  // process). FAILED_PRECONDITION, saying why, when not root or `ip netns`
  // does not work here; INTERNAL with the command's output when a step fails
  // (what was made is deleted again).
  static absl::StatusOr<std::unique_ptr<NetnsLab>> Create(const std::vector<std::string>& hosts);
  ~NetnsLab();

  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  // The host's namespace name and IPv4 address (198.18.0.N).
  const std::string& Namespace(const std::string& host) const;
  const std::string& Address(const std::string& host) const;
  // `argv` run inside the host's network namespace and a UTS namespace whose
  // host name is the network namespace's name, so that processes on
  // different lab hosts see different host names, as on separate machines
  // (`ip netns exec`, `unshare --uts` and `sh -c 'hostname ... && exec'` each
  // exec the next: the process's pid is the command's own).
  std::vector<std::string> Exec(const std::string& host, const std::vector<std::string>& argv) const;

  // Takes the host's link down at the switch (a partition) / up again.
  absl::Status Cut(const std::string& host);
  absl::Status Restore(const std::string& host);

 private:
  struct Host {
    std::string ns;
    std::string address;
    std::string switch_port;  // the veth end in the switch namespace
  };
  NetnsLab() = default;
  absl::Status Build(const std::vector<std::string>& hosts);
  const Host& Get(const std::string& host) const;

  std::string switch_ns_;
  std::map<std::string, Host> hosts_;
  std::vector<std::string> created_;  // namespaces to delete
};

// Runs `argv` (argv[0] looked up in /sbin, /usr/sbin, /bin, /usr/bin) and
// waits; INTERNAL with its output when it fails.
absl::Status RunCommand(const std::vector<std::string>& argv);

}  // namespace dfv::testing

#endif  // DFV_TESTS_INTEGRATION_NETNS_LAB_H_
