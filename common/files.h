// Whole files: read with an error naming the file, and files that hold secrets
// (credentials, keys, tokens) written whole or not at all, readable by their owner only.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meshplug {

// Replaces `path` with `text` atomically (a new temporary file of mode 0600, fsync,
// rename, fsync of the folder); a missing parent folder is made with mode 0700.
absl::Status WritePrivateFile(const std::string& path, std::string_view text);

// Where meshplug keeps state by default: $MESHPLUG_HOME/<relative>, else
// ~/.local/share/meshplug/<relative>.
std::string DefaultStatePath(std::string_view relative);

// The whole of `path`; the error reads "cannot read <what> <path>: <reason>".
absl::StatusOr<std::string> ReadFileText(const std::string& path, std::string_view what);

}  // namespace meshplug
