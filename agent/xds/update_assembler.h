// Turns the responses of one xDS stream into updates to apply and the ACKs and NACKs that
// answer them. No I/O and no clock of its own: the stream hands it responses and the time,
// asks when it wants to be polled again, and applies what Poll returns.
//
// A push arrives as one response per type, back to back. Responses that come within
// `settle` of each other (and at most `settle_max` after the first) form one update. An
// update is applied only when everything it references has arrived (the chain set, the
// scripts it names, the clusters the services route to); one that stays incomplete for
// `incomplete_timeout` is NACKed with what is missing. A new cluster waits up to
// `endpoints_warming` for its Endpoints (like Envoy's cluster warming). An update that
// holds resources nothing references yet (the script of a newly mounted plugin before the
// chain set naming it) waits up to `settle_max` for the rest of its push.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/xds/xds_resources.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::agent::xds {

using Clock = std::chrono::steady_clock;

struct AssemblerTiming {
  // Responses arriving within this of each other are applied as one update (the control
  // plane pushes a change as one response per type, back to back).
  std::chrono::milliseconds settle{1};
  // ... but never delayed more than this after the first of them. A batch that is
  // complete but holds resources nothing references yet (the script of a newly mounted
  // plugin before the chain set naming it) waits up to this for the rest of the push.
  std::chrono::milliseconds settle_max{100};
  // Like Envoy's cluster warming: a new cluster whose Endpoints have not arrived this long
  // after the update began is applied with no endpoints rather than holding the update. A
  // cluster the agent already runs without endpoints does not wait again.
  std::chrono::milliseconds endpoints_warming{500};
  // A response that leaves references unresolved this long is NACKed with what is missing.
  std::chrono::milliseconds incomplete_timeout{15000};
};

// An ACK (no error) or NACK of the latest response of one type.
struct Answer {
  std::string type_url;
  std::string nonce;    // of the response answered
  std::string version;  // its version_info
  // The version of the type the agent runs (state of the world NACKs carry it).
  std::string running_version;
  std::optional<std::string> error;
};

// A complete configuration to apply.
struct Update {
  ResourceSet resources;
  v1::Snapshot snapshot;  // `resources` assembled, with its content version
  Clock::time_point first_response;  // when the update's first response arrived
};

class UpdateAssembler {
 public:
  explicit UpdateAssembler(AssemblerTiming timing) : timing_(timing) {}

  // What the agent runs: resumed from by new streams (and used to answer NACKs).
  const ResourceSet& running() const { return running_; }
  bool running_any() const { return running_any_; }
  // The agent runs `resources` (version `version`) applied from outside a stream (the
  // saved configuration at start).
  void Adopt(const ResourceSet& resources, const std::string& version);

  // A new stream starts: it resumes from what runs, and nothing is pending.
  void StartStream();

  // A response of `type_url` arrived at `now`; `merge` puts its resources into the
  // received set, all or nothing. A response that does not merge (or of a type we do not
  // know) is NACKed at once: the returned answer.
  std::optional<Answer> OnResponse(const std::string& type_url, const std::string& nonce,
                                   const std::string& version,
                                   const std::function<absl::Status(ResourceSet&)>& merge,
                                   Clock::time_point now);

  // When Poll has something to do, if anything is pending.
  std::optional<Clock::time_point> NextDeadline() const;

  struct Due {
    // An update to apply; report the result with Applied().
    std::optional<Update> update;
    // Answers to send now (NACKs of an update that stayed incomplete, or ACKs of one that
    // turned out to be what already runs).
    std::vector<Answer> answers;
    // The control plane confirmed the configuration that runs (it came from elsewhere,
    // e.g. the saved one); the received versions replaced the running ones.
    bool confirmed = false;
  };
  Due Poll(Clock::time_point now);

  // The result of applying the update Poll returned: ACKs of every type it covers, or
  // NACKs with the error; on success the update is what runs. Success may name isolated
  // failures (script plugins that did not load while the rest runs): the PluginScript
  // type is then NACKed with them and the others ACKed.
  std::vector<Answer> Applied(const Update& update, const absl::StatusOr<std::vector<std::string>>& result);

 private:
  struct TypeTrack {
    enum class State { kNone, kPending, kAcked, kNacked, kRejected };
    State state = State::kNone;
    std::string nonce;    // of the latest response
    std::string version;  // its version_info / system_version_info
  };
  using State = TypeTrack::State;

  Answer AnswerFor(const std::string& type_url, std::optional<std::string> error) const;
  std::optional<Clock::time_point> SettleAt() const;
  Due Settle(Clock::time_point now);
  std::vector<Answer> NackIncomplete();
  void EndBatch();

  const AssemblerTiming timing_;
  ResourceSet received_;  // what the control plane believes this agent has
  ResourceSet running_;   // what the agent runs
  bool running_any_ = false;
  std::string running_version_;
  std::map<std::string, TypeTrack> tracks_;
  std::optional<Clock::time_point> batch_first_, batch_last_;  // responses not yet settled
  bool hold_ = false;  // complete, but holds unreferenced resources: wait for the rest
  std::optional<Clock::time_point> warming_until_;  // only Endpoints missing: apply then
  std::optional<Clock::time_point> incomplete_since_;
  std::string last_missing_;  // logged once per change
};

}  // namespace meshplug::agent::xds
