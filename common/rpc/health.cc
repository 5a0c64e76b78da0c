#include "common/rpc/health.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/rpc/rpc.h"

namespace dfv::rpc {
namespace {

using google::protobuf::internal::WireFormatLite;

constexpr char kCheckMethod[] = "/grpc.health.v1.Health/Check";

// HealthCheckRequest{string service = 1}. The messages are two fields of
// gRPC's health.proto, which Debian's gRPC does not install for C++; they are
// encoded here with protobuf's wire-format primitives rather than vendoring
// the .proto.
std::string EncodeRequest(const std::string& service) {
  std::string bytes;
  if (service.empty()) return bytes;
  google::protobuf::io::StringOutputStream out(&bytes);
  google::protobuf::io::CodedOutputStream coded(&out);
  WireFormatLite::WriteString(1, service, &coded);
  coded.Trim();
  return bytes;
}

// HealthCheckResponse{ServingStatus status = 1}; unknown fields skipped.
absl::StatusOr<ServingStatus> DecodeResponse(const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  uint32_t status = 0;  // absent: UNKNOWN (proto3 default)
  while (const uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 1 &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint32(&status)) return absl::InternalError("health reply: truncated status");
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return absl::InternalError("health reply: not a HealthCheckResponse");
    }
  }
  if (!in.ConsumedEntireMessage()) return absl::InternalError("health reply: not a HealthCheckResponse");
  if (status > static_cast<uint32_t>(ServingStatus::kServiceUnknown)) {
    return absl::InternalError(absl::StrCat("health reply: unknown status ", status));
  }
  return static_cast<ServingStatus>(status);
}

}  // namespace

const char* ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kUnknown:
      return "UNKNOWN";
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

absl::StatusOr<ServingStatus> CheckHealth(grpc::Channel& channel, absl::Duration timeout,
                                          const std::string& service) {
  // GenericStub wants a shared_ptr; this one does not own the channel.
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  const std::string request_bytes = EncodeRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, kCheckMethod, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpcStatus(status);
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("health reply: cannot read it");
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return DecodeResponse(bytes);
}

absl::Status CheckDaemonHealth(const HealthCheckOptions& options) {
  if (options.address.empty()) return absl::InvalidArgumentError("--address: required");
  std::shared_ptr<grpc::Channel> channel;
  if (options.tls.empty()) {
    channel = MakeChannel(options.address);
  } else {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> tls_channel = MakeChannel(options.address, options.tls);
    if (!tls_channel.ok()) return tls_channel.status();
    channel = std::move(*tls_channel);
  }
  absl::StatusOr<ServingStatus> answer = CheckHealth(*channel, options.timeout);
  if (!answer.ok()) {
    return absl::Status(answer.status().code(), absl::StrCat(options.address, ": ", answer.status().message()));
  }
  if (*answer != ServingStatus::kServing) {
    return absl::UnavailableError(absl::StrCat(options.address, ": ", ServingStatusName(*answer)));
  }
  return absl::OkStatus();
}

}  // namespace dfv::rpc
