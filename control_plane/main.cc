// meshplug control plane: serves the xDS ADS API and the admin API on one gRPC port.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:15010", "address of the gRPC server (xDS and admin)");

namespace {

// SIGTERM/SIGINT: wait for the signal on a thread, then shut the server down cleanly.
void ShutdownOnSignal(grpc::Server& server) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "control-plane: signal %d, shutting down\n", sig);
  server.Shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);

  // Block the signals before any thread starts, so only the waiter receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "control-plane: cannot listen on %s\n",
                 absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  std::fprintf(stderr, "control-plane: listening on %s (port %d)\n",
               absl::GetFlag(FLAGS_listen).c_str(), port);
  std::thread waiter([&] { ShutdownOnSignal(*server); });
  server->Wait();
  waiter.join();
  return 0;
}
