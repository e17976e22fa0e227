// A proxyless gRPC client on Debian's libgrpc++ (gRPC's own xDS resolver and balancers,
// nothing of meshplug's): it calls an xds:/// target, configured only by the bootstrap
// file GRPC_XDS_BOOTSTRAP names, and prints one line per call:
//   <steady clock ms> OK <reply>          or   <steady clock ms> <STATUS CODE> <details>
// then "done". The calls are bounded in count and in time.
//
//   xds_grpc_client TARGET METHOD REQUEST CALLS [--interval_ms=N] [--timeout_ms=N]
//                   [--max_seconds=N] [--wait_for_ready]
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

namespace {

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return "";
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    default: return "OTHER";
  }
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: %s TARGET METHOD REQUEST CALLS [--interval_ms=N] [--timeout_ms=N] [--max_seconds=N] "
                 "[--wait_for_ready]\n",
                 argv[0]);
    return 2;
  }
  const std::string target = argv[1], method = argv[2], request = argv[3];
  const int calls = std::stoi(argv[4]);
  int interval_ms = 0, timeout_ms = 5000, max_seconds = 60;
  bool wait_for_ready = false;
  for (int i = 5; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const std::string& flag) { return std::stoi(arg.substr(flag.size())); };
    if (arg.rfind("--interval_ms=", 0) == 0) interval_ms = value("--interval_ms=");
    else if (arg.rfind("--timeout_ms=", 0) == 0) timeout_ms = value("--timeout_ms=");
    else if (arg.rfind("--max_seconds=", 0) == 0) max_seconds = value("--max_seconds=");
    else if (arg == "--wait_for_ready") wait_for_ready = true;
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(max_seconds);
  for (int i = 0; i < calls && std::chrono::steady_clock::now() < end; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    // A call waits for a configuration rather than failing while there is none.
    ctx.set_wait_for_ready(wait_for_ready);
    grpc::Slice slice(request);
    grpc::ByteBuffer req(&slice, 1), resp;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status st) { done.set_value(st); });
    const grpc::Status st = done.get_future().get();
    if (st.ok()) {
      std::printf("%lld OK %s\n", static_cast<long long>(NowMs()), ToString(resp).c_str());
    } else {
      std::printf("%lld %s %s\n", static_cast<long long>(NowMs()), CodeName(st.error_code()), st.error_message().c_str());
    }
    std::fflush(stdout);
    if (interval_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  std::printf("done\n");
  std::fflush(stdout);
  return 0;
}
