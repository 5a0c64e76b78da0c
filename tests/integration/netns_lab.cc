#include "tests/integration/netns_lab.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "worker/daemon/subprocess.h"

namespace dfv::testing {
namespace {

std::string FindProgram(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return name;
}

}  // namespace

absl::Status RunCommand(const std::vector<std::string>& argv) {
  static int counter = 0;
  const std::string out = absl::StrCat(std::filesystem::temp_directory_path().string(), "/dfv-netns-", getpid(),
                                       "-", ++counter, ".log");
  daemon::SpawnOptions options;
  options.argv = argv;
  options.argv[0] = FindProgram(argv[0]);
  options.stderr_path = out;
  auto process = daemon::Subprocess::Spawn(options);
  if (!process.ok()) return process.status();
  bool eof = false;
  std::string stdout_text;
  while (!eof) {
    auto chunk = (*process)->ReadStdout(absl::Seconds(10), &eof);
    if (!chunk.ok()) break;
    stdout_text += *chunk;
  }
  const daemon::ExitStatus exit = (*process)->Wait();
  const std::string err = ReadFileToString(out).value_or("");
  std::filesystem::remove(out);
  if (exit.exited && exit.code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "), "`: ", daemon::DescribeExit(exit), ": ",
                                          stdout_text, err));
}

absl::StatusOr<std::unique_ptr<NetnsLab>> NetnsLab::Create(const std::vector<std::string>& hosts) {
  if (geteuid() != 0) return absl::FailedPreconditionError("network namespaces need root (this test runs as non-root)");
  if (hosts.empty() || hosts.size() > 250) return absl::InvalidArgumentError("NetnsLab: 1 to 250 hosts");
  auto lab = std::unique_ptr<NetnsLab>(new NetnsLab());
  absl::Status built = lab->Build(hosts);
  if (!built.ok()) {
    lab.reset();  // deletes what was made
    if (absl::IsInternal(built) && built.message().find("ip netns add") != absl::string_view::npos) {
      return absl::FailedPreconditionError(absl::StrCat("`ip netns` does not work here: ", built.message()));
    }
    return built;
  }
  return lab;
}

absl::Status NetnsLab::Build(const std::vector<std::string>& hosts) {
  const std::string tag = absl::StrCat("dfv", getpid());
  switch_ns_ = tag + "-sw";
  if (absl::Status s = RunCommand({"ip", "netns", "add", switch_ns_}); !s.ok()) return s;
  created_.push_back(switch_ns_);
  auto in_switch = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"ip", "netns", "exec", switch_ns_});
    return RunCommand(argv);
  };
  if (absl::Status s = in_switch({"ip", "link", "add", "br0", "type", "bridge"}); !s.ok()) return s;
  if (absl::Status s = in_switch({"ip", "link", "set", "br0", "up"}); !s.ok()) return s;
  int n = 0;
  for (const std::string& name : hosts) {
    ++n;
    Host host;
    host.ns = absl::StrCat(tag, "-", name);
    host.address = absl::StrCat("198.18.0.", n);
    host.switch_port = absl::StrCat("p", n);
    if (absl::Status s = RunCommand({"ip", "netns", "add", host.ns}); !s.ok()) return s;
    created_.push_back(host.ns);
    // Made inside the host's namespace, so no interface ever appears in the
    // machine's own; one end then moves to the switch.
    const std::vector<std::vector<std::string>> steps = {
        {"ip", "netns", "exec", host.ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name",
         host.switch_port},
        {"ip", "netns", "exec", host.ns, "ip", "link", "set", host.switch_port, "netns", switch_ns_},
        {"ip", "netns", "exec", host.ns, "ip", "addr", "add", host.address + "/24", "dev", "eth0"},
        {"ip", "netns", "exec", host.ns, "ip", "link", "set", "eth0", "up"},
        {"ip", "netns", "exec", host.ns, "ip", "link", "set", "lo", "up"},
        {"ip", "netns", "exec", switch_ns_, "ip", "link", "set", host.switch_port, "master", "br0"},
        {"ip", "netns", "exec", switch_ns_, "ip", "link", "set", host.switch_port, "up"},
    };
    for (const auto& argv : steps) {
      if (absl::Status s = RunCommand(argv); !s.ok()) return s;
    }
    hosts_[name] = std::move(host);
  }
  return absl::OkStatus();
}

NetnsLab::~NetnsLab() {
  // Deleting a namespace deletes its interfaces, and a veth pair goes with
  // either end.
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    (void)RunCommand({"ip", "netns", "del", *it});
  }
}

const NetnsLab::Host& NetnsLab::Get(const std::string& host) const {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) {
    static const Host* const kNone = new Host{"(no such host)", "(no such host)", ""};
    return *kNone;
  }
  return it->second;
}

const std::string& NetnsLab::Namespace(const std::string& host) const { return Get(host).ns; }
const std::string& NetnsLab::Address(const std::string& host) const { return Get(host).address; }

std::vector<std::string> NetnsLab::Exec(const std::string& host, const std::vector<std::string>& argv) const {
  // A host of its own has a host name of its own: a UTS namespace named
  // after the network namespace (every step execs the next).
  std::vector<std::string> full = {FindProgram("ip"), "netns",  "exec", Get(host).ns,
                                   FindProgram("unshare"), "--uts", FindProgram("sh"), "-c",
                                   "hostname \"$0\" && exec \"$@\"", Get(host).ns};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

absl::Status NetnsLab::Cut(const std::string& host) {
  return RunCommand({"ip", "netns", "exec", switch_ns_, "ip", "link", "set", Get(host).switch_port, "down"});
}

absl::Status NetnsLab::Restore(const std::string& host) {
  return RunCommand({"ip", "netns", "exec", switch_ns_, "ip", "link", "set", Get(host).switch_port, "up"});
}

}  // namespace dfv::testing
