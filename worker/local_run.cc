#include "worker/local_run.h"

#include <ctime>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"
#include "common/status_macros.h"
#include "worker/data/dataset.h"
#include "worker/train/console_observer.h"

namespace dfv::worker {
namespace {

std::string NewRunFolder(const std::string& root, const std::string& job_name) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
  std::filesystem::path base = std::filesystem::path(root) / absl::StrCat(job_name, "-", stamp);
  std::filesystem::path candidate = base;
  for (int i = 2; std::filesystem::exists(candidate); ++i) candidate = absl::StrCat(base.string(), "-", i);
  return candidate.string();
}

// The run folder a resumed run continues in: the folder itself, or the one
// that holds the checkpoints/ folder of a checkpoint file.
std::string RunFolderOf(const std::string& resume_from) {
  std::filesystem::path p(resume_from);
  if (std::filesystem::is_directory(p)) return p.string();
  std::filesystem::path dir = p.parent_path();
  if (dir.filename() == "checkpoints") return dir.parent_path().string();
  return dir.string();
}

}  // namespace

absl::StatusOr<LocalRunResult> RunLocal(const LocalRunOptions& options) {
  DFV_ASSIGN_OR_RETURN(jobspec::JobSpec spec, jobspec::LoadJobSpecFile(options.job_file, options.overrides));
  if (!options.data_roots.empty()) DFV_RETURN_IF_ERROR(data::CheckDatasetUnderRoots(spec.dataset, options.data_roots));
  LocalRunResult result;
  if (!options.out_dir.empty()) {
    result.out_dir = options.out_dir;
  } else if (!options.resume_from.empty()) {
    result.out_dir = RunFolderOf(options.resume_from);
  } else {
    result.out_dir = NewRunFolder(options.runs_root, spec.name);
  }
  DFV_RETURN_IF_ERROR(MakeDirs(result.out_dir));

  train::ConsoleObserver console(options.console, options.interactive);
  train::TrainerOptions trainer_options;
  trainer_options.spec = spec;
  trainer_options.out_dir = result.out_dir;
  trainer_options.resume_from = options.resume_from;
  trainer_options.observer = &console;
  trainer_options.trace_path = options.trace_path;
  trainer_options.trace_steps = options.trace_steps;
  console.PrintLine(absl::StrCat("training ", spec.name, " (", spec.model, " on ", spec.dataset.kind,
                                 ") into ", result.out_dir));
  DFV_ASSIGN_OR_RETURN(auto trainer, train::Trainer::Create(std::move(trainer_options)));
  DFV_ASSIGN_OR_RETURN(result.summary, trainer->Run());
  return result;
}

}  // namespace dfv::worker
