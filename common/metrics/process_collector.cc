#include "common/metrics/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"

namespace dfv::metrics {
namespace {

// Seconds since the epoch at which the machine booted (/proc/stat's btime).
double BootTimeSeconds() {
  absl::StatusOr<std::string> stat = ReadFileToString("/proc/stat");
  if (!stat.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      double value = 0;
      return absl::SimpleAtod(line, &value) ? value : 0;
    }
  }
  return 0;
}

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return prometheus::MetricFamily{std::move(name), std::move(help), type, {metric}};
}

}  // namespace

absl::StatusOr<ProcessStats> ReadProcessStats(pid_t pid) {
  const std::string path = absl::StrCat("/proc/", pid, "/stat");
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  // the fields are counted after the last ')'.
  const size_t close = text->rfind(')');
  if (close == std::string::npos) return absl::InternalError(absl::StrCat(path, ": no ')'"));
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*text).substr(close + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22,
  // vsize 23, rss 24 (in pages).
  auto field = [&](int number, double* out) { return absl::SimpleAtod(fields[number - 3], out); };
  if (fields.size() < 22) return absl::InternalError(absl::StrCat(path, ": too few fields"));
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &start) || !field(23, &vsize) || !field(24, &rss)) {
    return absl::InternalError(absl::StrCat(path, ": a field is not a number"));
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  ProcessStats stats;
  stats.cpu_seconds = (utime + stime) / ticks;
  stats.resident_bytes = static_cast<int64_t>(rss) * sysconf(_SC_PAGESIZE);
  stats.virtual_bytes = static_cast<int64_t>(vsize);
  stats.start_time_seconds = BootTimeSeconds() + start / ticks;
  return stats;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  absl::StatusOr<ProcessStats> stats = ReadProcessStats(getpid());
  if (stats.ok()) {
    families.push_back(Family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                              prometheus::MetricType::Counter, stats->cpu_seconds));
    families.push_back(Family("process_resident_memory_bytes", "Resident memory size in bytes.",
                              prometheus::MetricType::Gauge, static_cast<double>(stats->resident_bytes)));
    families.push_back(Family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                              prometheus::MetricType::Gauge, static_cast<double>(stats->virtual_bytes)));
    families.push_back(Family("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              prometheus::MetricType::Gauge, stats->start_time_seconds));
  }
  std::error_code ec;
  int64_t open_fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++open_fds;
  }
  if (!ec) {
    families.push_back(Family("process_open_fds", "Number of open file descriptors.",
                              prometheus::MetricType::Gauge, static_cast<double>(open_fds)));
  }
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    families.push_back(Family("process_max_fds", "Maximum number of open file descriptors.",
                              prometheus::MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

}  // namespace dfv::metrics
