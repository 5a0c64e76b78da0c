#include "worker/dist/shm_communicator.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/random_secret.h"
#include "common/status_macros.h"
#include "worker/dist/status_util.h"

namespace dfv::dist {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kMagic = 0x316d68732d766664;  // "dfv-shm1", little-endian
constexpr size_t kPage = 4096;
constexpr size_t kLine = 64;  // shares of a chunk start on their own cache line
constexpr size_t kTokenChars = 32;
constexpr char kShmDir[] = "/dev/shm";
// A barrier spins this long before it sleeps on the futex; asleep, it wakes
// every kSleepSlice to check its peers and the deadline.
constexpr std::chrono::microseconds kSpin{30};
constexpr std::chrono::milliseconds kSleepSlice{50};

static_assert(std::atomic<uint32_t>::is_always_lock_free && sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
              "the barrier's words are futexes: plain lock-free 32-bit atomics");

// The segment's first page. Written by rank 0 before it publishes the name;
// the atomics are the barrier, shared by every rank.
struct Control {
  uint64_t magic;
  uint64_t chunk_bytes;
  uint32_t world_size;
  char token[kTokenChars + 1];
  alignas(kLine) std::atomic<uint32_t> arrived;
  alignas(kLine) std::atomic<uint32_t> generation;
  std::atomic<uint32_t> sleepers;
};
static_assert(sizeof(Control) <= kPage);

size_t SegmentBytes(int world_size, size_t chunk_bytes) { return kPage + 2 * (world_size + 1) * chunk_bytes; }

std::string ErrnoText(int error) { return std::strerror(error); }

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::milliseconds timeout) {
  struct timespec ts;
  ts.tv_sec = timeout.count() / 1000;
  ts.tv_nsec = (timeout.count() % 1000) * 1000000;
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// The mapped segment. The creator owns the name until Unlink.
class Segment {
 public:
  ~Segment() {
    if (base_ != nullptr) munmap(base_, bytes_);
    if (fd_ >= 0) close(fd_);
    Unlink();
  }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  static absl::StatusOr<std::unique_ptr<Segment>> Create(int world_size, size_t chunk_bytes) {
    std::unique_ptr<Segment> s(new Segment);
    s->bytes_ = SegmentBytes(world_size, chunk_bytes);
    struct statvfs fs;
    if (statvfs(kShmDir, &fs) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(kShmDir, ": ", ErrnoText(errno)));
    }
    const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (s->bytes_ > free_bytes) {
      return absl::FailedPreconditionError(absl::StrFormat("the segment needs %.1f MiB and %s has %.1f MiB free",
                                                           s->bytes_ / 1048576.0, kShmDir, free_bytes / 1048576.0));
    }
    for (int attempt = 0; attempt < 4 && s->fd_ < 0; ++attempt) {
      DFV_ASSIGN_OR_RETURN(const std::string random, RandomHexSecret(16));
      s->name_ = absl::StrCat("/dfv-", random);
      s->fd_ = shm_open(s->name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (s->fd_ < 0 && errno != EEXIST) break;
    }
    if (s->fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("shm_open: ", ErrnoText(errno)));
    s->owned_ = true;
    // Reserve every page now: a tmpfs that fills up later would kill the
    // process with SIGBUS on first touch.
    if (int error = posix_fallocate(s->fd_, 0, static_cast<off_t>(s->bytes_)); error != 0) {
      return absl::FailedPreconditionError(absl::StrFormat("reserving %.1f MiB in %s: %s", s->bytes_ / 1048576.0,
                                                           kShmDir, ErrnoText(error)));
    }
    DFV_RETURN_IF_ERROR(s->Map());
    Control* c = new (s->base_) Control;
    c->magic = kMagic;
    c->chunk_bytes = chunk_bytes;
    c->world_size = static_cast<uint32_t>(world_size);
    DFV_ASSIGN_OR_RETURN(s->token_, RandomHexSecret(kTokenChars / 2));
    std::memcpy(c->token, s->token_.c_str(), kTokenChars + 1);
    c->arrived.store(0);
    c->generation.store(0);
    c->sleepers.store(0);
    return s;
  }

  static absl::StatusOr<std::unique_ptr<Segment>> Open(const std::string& name, const std::string& token,
                                                       int world_size) {
    std::unique_ptr<Segment> s(new Segment);
    s->name_ = name;
    s->fd_ = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (s->fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("shm_open ", name, ": ", ErrnoText(errno)));
    struct stat st;
    if (fstat(s->fd_, &st) != 0) return absl::FailedPreconditionError(absl::StrCat("fstat: ", ErrnoText(errno)));
    s->bytes_ = static_cast<size_t>(st.st_size);
    if (s->bytes_ < kPage) return absl::FailedPreconditionError(absl::StrCat(name, " is not a dfv segment"));
    DFV_RETURN_IF_ERROR(s->Map());
    const Control* c = s->control();
    if (c->magic != kMagic || c->world_size != static_cast<uint32_t>(world_size) ||
        SegmentBytes(world_size, c->chunk_bytes) != s->bytes_ ||
        std::string(c->token, strnlen(c->token, kTokenChars)) != token) {
      return absl::FailedPreconditionError(absl::StrCat(name, " is not this group's segment"));
    }
    s->token_ = token;
    return s;
  }

  // Takes an exclusive OFD lock on byte `rank` of the file: the kernel holds
  // it until this process closes the segment or dies.
  absl::Status Lock(int rank) {
    struct flock lock = ByteOf(rank);
    if (fcntl(fd_, F_OFD_SETLK, &lock) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("locking rank ", rank, "'s byte: ", ErrnoText(errno)));
    }
    return absl::OkStatus();
  }

  // Whether some process still holds rank's lock. When the kernel cannot say,
  // assume it does (the deadline still applies).
  bool Held(int rank) const {
    struct flock lock = ByteOf(rank);
    if (fcntl(fd_, F_OFD_GETLK, &lock) != 0) return true;
    return lock.l_type != F_UNLCK;
  }

  void Unlink() {
    if (owned_) shm_unlink(name_.c_str());
    owned_ = false;
  }

  Control* control() const { return static_cast<Control*>(base_); }
  size_t chunk_bytes() const { return control()->chunk_bytes; }
  // Buffer `index` (a rank's slot, or world_size for the result) of `set`.
  char* buffer(int set, int index) const {
    const size_t slots = control()->world_size + 1;
    return static_cast<char*>(base_) + kPage + (set * slots + index) * chunk_bytes();
  }
  const std::string& name() const { return name_; }
  const std::string& token() const { return token_; }

 private:
  Segment() = default;

  absl::Status Map() {
    void* base = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (base == MAP_FAILED) return absl::FailedPreconditionError(absl::StrCat("mmap: ", ErrnoText(errno)));
    base_ = base;
    return absl::OkStatus();
  }

  static struct flock ByteOf(int rank) {
    struct flock lock;
    std::memset(&lock, 0, sizeof(lock));
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = rank;
    lock.l_len = 1;
    return lock;
  }

  std::string name_;
  std::string token_;
  int fd_ = -1;
  bool owned_ = false;
  void* base_ = nullptr;
  size_t bytes_ = 0;
};

// out[i] = in[0][i] + in[1][i] + ..., always in that order.
template <typename T>
void SumInRankOrder(const std::vector<const T*>& in, T* __restrict__ out, size_t count) {
  constexpr size_t kBlock = 4096 / sizeof(T);  // stays in L1 across the ranks' passes
  for (size_t b = 0; b < count; b += kBlock) {
    const size_t n = std::min(kBlock, count - b);
    T* __restrict__ o = out + b;
    const T* __restrict__ first = in[0] + b;
    if (in.size() == 1) {
      std::memcpy(o, first, n * sizeof(T));
      continue;
    }
    const T* __restrict__ second = in[1] + b;
    for (size_t i = 0; i < n; ++i) o[i] = first[i] + second[i];
    for (size_t k = 2; k < in.size(); ++k) {
      const T* __restrict__ next = in[k] + b;
      for (size_t i = 0; i < n; ++i) o[i] += next[i];
    }
  }
}

class ShmWork final : public Work {
 public:
  explicit ShmWork(std::future<absl::Status> done) : done_(std::move(done)) {}
  absl::Status Wait() override { return done_.get(); }

 private:
  std::future<absl::Status> done_;
};

class ShmCommunicator final : public Communicator {
 public:
  ShmCommunicator(std::unique_ptr<Segment> segment, int rank, int world_size, std::chrono::milliseconds timeout)
      : segment_(std::move(segment)), rank_(rank), world_size_(world_size), timeout_(timeout) {
    thread_ = std::thread([this] { Run(); });
  }

  ~ShmCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    abort_.store(true);
    FutexWakeAll(&segment_->control()->generation);  // a waiter only re-checks
    thread_.join();
    // segment_ goes now: closing it drops this rank's lock, which is how a
    // peer still waiting on a barrier learns that this rank has gone.
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::string backend() const override { return "shm"; }
  const std::string& segment_name() const { return segment_->name(); }

  std::unique_ptr<Work> StartAllReduceSum(torch::Tensor tensor) override {
    if (!tensor.defined() || !tensor.device().is_cpu() || !tensor.is_contiguous() ||
        (tensor.scalar_type() != torch::kFloat32 && tensor.scalar_type() != torch::kFloat64)) {
      return std::make_unique<CompletedWork>(absl::InvalidArgumentError(
          "shm all-reduce: the tensor must be a contiguous float32 or float64 CPU tensor"));
    }
    return std::make_unique<ShmWork>(Enqueue(Kind::kAllReduce, std::move(tensor), 0));
  }

  absl::Status Broadcast(std::vector<torch::Tensor> tensors, int root) override {
    if (root < 0 || root >= world_size_) {
      return absl::InvalidArgumentError(absl::StrCat("shm broadcast: root ", root, " of world size ", world_size_));
    }
    for (const torch::Tensor& t : tensors) {
      if (!t.defined() || !t.device().is_cpu()) {
        return absl::InvalidArgumentError("shm broadcast: every tensor must be a defined CPU tensor");
      }
    }
    try {
      // Contiguous buffers go through the segment; a view that is not is
      // staged and copied back, as the Gloo communicator does.
      std::vector<torch::Tensor> buffers;
      std::vector<std::future<absl::Status>> done;
      for (const torch::Tensor& t : tensors) {
        buffers.push_back(t.is_contiguous() ? t : t.contiguous());
        done.push_back(Enqueue(Kind::kBroadcast, buffers.back(), root));
      }
      absl::Status status;
      for (std::future<absl::Status>& d : done) status.Update(d.get());
      if (!status.ok()) return status;
      for (size_t i = 0; i < tensors.size(); ++i) {
        if (!buffers[i].is_same(tensors[i])) tensors[i].copy_(buffers[i]);
      }
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("shm broadcast: ", e.what()));
    }
  }

 private:
  enum class Kind { kAllReduce, kBroadcast };
  struct Op {
    Kind kind;
    torch::Tensor tensor;
    int root;
    std::promise<absl::Status> done;
  };

  std::future<absl::Status> Enqueue(Kind kind, torch::Tensor tensor, int root) {
    std::promise<absl::Status> done;
    std::future<absl::Status> future = done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(Op{kind, std::move(tensor), root, std::move(done)});
    }
    cv_.notify_one();
    return future;
  }

  // The collective thread: runs the queue in order.
  void Run() {
    for (;;) {
      Op op;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        op = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status status = failure_;
      if (status.ok()) {
        status = Execute(op);
        if (!status.ok()) failure_ = status;
      }
      op.tensor = torch::Tensor();  // released before the caller hears it is done
      op.done.set_value(std::move(status));
    }
  }

  absl::Status Execute(const Op& op) {
    if (abort_.load()) return absl::CancelledError("shm communicator: closed");
    const Clock::time_point deadline = Clock::now() + timeout_;
    char* data = static_cast<char*>(op.tensor.data_ptr());
    const size_t element = op.tensor.element_size();
    const size_t total = static_cast<size_t>(op.tensor.numel()) * element;
    const size_t chunk = segment_->chunk_bytes() / element * element;
    for (size_t offset = 0; offset < total; offset += chunk) {
      const size_t bytes = std::min(chunk, total - offset);
      const int set = static_cast<int>(chunks_++ & 1);
      if (op.kind == Kind::kBroadcast) {
        char* result = segment_->buffer(set, world_size_);
        if (rank_ == op.root) std::memcpy(result, data + offset, bytes);
        DFV_RETURN_IF_ERROR(Barrier(deadline, "broadcast"));
        if (rank_ != op.root) std::memcpy(data + offset, result, bytes);
      } else if (op.tensor.scalar_type() == torch::kFloat32) {
        DFV_RETURN_IF_ERROR(AllReduceChunk<float>(reinterpret_cast<float*>(data + offset), bytes / element, set, deadline));
      } else {
        DFV_RETURN_IF_ERROR(AllReduceChunk<double>(reinterpret_cast<double*>(data + offset), bytes / element, set, deadline));
      }
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status AllReduceChunk(T* data, size_t count, int set, Clock::time_point deadline) {
    std::memcpy(segment_->buffer(set, rank_), data, count * sizeof(T));
    DFV_RETURN_IF_ERROR(Barrier(deadline, "all-reduce"));
    // This rank's share of the chunk, whole cache lines apart from the others'.
    constexpr size_t kAlign = kLine / sizeof(T);
    size_t share = (count + world_size_ - 1) / world_size_;
    share = (share + kAlign - 1) / kAlign * kAlign;
    const size_t begin = std::min(count, rank_ * share);
    const size_t end = std::min(count, begin + share);
    T* result = reinterpret_cast<T*>(segment_->buffer(set, world_size_));
    if (begin < end) {
      std::vector<const T*> slots(world_size_);
      for (int r = 0; r < world_size_; ++r) slots[r] = reinterpret_cast<const T*>(segment_->buffer(set, r)) + begin;
      SumInRankOrder(slots, result + begin, end - begin);
    }
    DFV_RETURN_IF_ERROR(Barrier(deadline, "all-reduce"));
    std::memcpy(data, result, count * sizeof(T));
    return absl::OkStatus();
  }

  // A central barrier: the last rank to arrive resets the count and bumps the
  // generation (release), which the others wait for (acquire).
  absl::Status Barrier(Clock::time_point deadline, const char* what) {
    Control* c = segment_->control();
    const uint32_t generation = c->generation.load(std::memory_order_acquire);
    if (c->arrived.fetch_add(1, std::memory_order_acq_rel) == static_cast<uint32_t>(world_size_ - 1)) {
      c->arrived.store(0, std::memory_order_relaxed);
      c->generation.fetch_add(1, std::memory_order_seq_cst);
      if (c->sleepers.load(std::memory_order_seq_cst) > 0) FutexWakeAll(&c->generation);
      return absl::OkStatus();
    }
    const Clock::time_point spin_until = Clock::now() + kSpin;
    for (uint32_t i = 1;; ++i) {
      if (c->generation.load(std::memory_order_acquire) != generation) return absl::OkStatus();
      CpuRelax();
      if ((i & 63) == 0 && Clock::now() > spin_until) break;
    }
    for (;;) {
      c->sleepers.fetch_add(1, std::memory_order_seq_cst);
      if (c->generation.load(std::memory_order_seq_cst) == generation) FutexWait(&c->generation, generation, kSleepSlice);
      c->sleepers.fetch_sub(1, std::memory_order_seq_cst);
      if (c->generation.load(std::memory_order_acquire) != generation) return absl::OkStatus();
      if (abort_.load()) return absl::CancelledError(absl::StrCat("shm ", what, ": the communicator was closed"));
      for (int r = 0; r < world_size_; ++r) {
        if (r != rank_ && !segment_->Held(r)) {
          return absl::UnavailableError(
              absl::StrCat("shm ", what, ": rank ", r, " of ", world_size_, " went away (its process ended or it left the group)"));
        }
      }
      if (Clock::now() > deadline) {
        return absl::DeadlineExceededError(absl::StrFormat("shm %s: the other ranks did not arrive within %g s",
                                                           what, timeout_.count() / 1000.0));
      }
    }
  }

  const std::unique_ptr<Segment> segment_;
  const int rank_;
  const int world_size_;
  const std::chrono::milliseconds timeout_;
  std::atomic<bool> abort_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op> queue_;  // guarded by mu_
  bool stop_ = false;     // guarded by mu_
  // The collective thread's own.
  absl::Status failure_;
  uint64_t chunks_ = 0;
  std::thread thread_;
};

std::string ToString(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateShmCommunicator(c10::intrusive_ptr<c10d::Store> store,
                                                                    int rank, int world_size,
                                                                    const ShmOptions& options) {
  if (!store) return absl::InvalidArgumentError("shm communicator: no store");
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " of world size ", world_size));
  }
  if (options.chunk_bytes < kLine || options.chunk_bytes % kLine != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shm communicator: chunk_bytes ", options.chunk_bytes, " is not a positive multiple of ", kLine));
  }
  try {
    std::unique_ptr<Segment> segment;
    std::string problem;
    if (rank == 0) {
      absl::StatusOr<std::unique_ptr<Segment>> created = Segment::Create(world_size, options.chunk_bytes);
      if (created.ok()) {
        segment = *std::move(created);
        const std::string published = absl::StrCat(segment->name(), " ", segment->token());
        store->set(kShmSegmentKey, std::vector<uint8_t>(published.begin(), published.end()));
      } else {
        problem = std::string(created.status().message());
        store->set(kShmSegmentKey, std::vector<uint8_t>{'!'});
      }
    } else {
      store->wait({kShmSegmentKey}, options.setup_timeout);
      const std::string published = ToString(store->get(kShmSegmentKey));
      const std::vector<std::string> fields = absl::StrSplit(published, ' ');
      if (fields.size() != 2) {
        problem = "rank 0 made no segment";
      } else {
        absl::StatusOr<std::unique_ptr<Segment>> opened = Segment::Open(fields[0], fields[1], world_size);
        if (opened.ok()) {
          segment = *std::move(opened);
        } else {
          problem = std::string(opened.status().message());
        }
      }
    }
    if (segment != nullptr) {
      if (absl::Status locked = segment->Lock(rank); !locked.ok()) problem = std::string(locked.message());
    }
    const std::string report = problem.empty() ? "mapped" : problem;
    store->set(absl::StrCat(kShmMappedKeyPrefix, rank), std::vector<uint8_t>(report.begin(), report.end()));
    std::vector<std::string> keys;
    for (int r = 0; r < world_size; ++r) keys.push_back(absl::StrCat(kShmMappedKeyPrefix, r));
    store->wait(keys, options.setup_timeout);
    if (rank == 0 && segment != nullptr) segment->Unlink();  // every rank has opened it, or never will
    std::vector<std::string> problems;
    for (int r = 0; r < world_size; ++r) {
      const std::string reported = ToString(store->get(keys[r]));
      if (reported != "mapped") problems.push_back(absl::StrCat("rank ", r, ": ", reported));
    }
    if (!problems.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the ranks cannot share memory (", absl::StrJoin(problems, "; "), ")"));
    }
    return std::unique_ptr<Communicator>(
        new ShmCommunicator(std::move(segment), rank, world_size, options.collective_timeout));
  } catch (const std::exception& e) {
    return CollectiveFailure(absl::StrCat("shared-memory setup of rank ", rank, " of ", world_size), e.what());
  }
}

std::string ShmSegmentName(const Communicator& communicator) {
  const auto* shm = dynamic_cast<const ShmCommunicator*>(&communicator);
  return shm == nullptr ? std::string() : shm->segment_name();
}

}  // namespace dfv::dist
