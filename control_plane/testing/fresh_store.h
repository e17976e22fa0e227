// A SQLite store for a test, in the test's temporary directory and without what an
// earlier run left there (the database, its WAL and shared memory, the lock).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "control_plane/store/sqlite_store.h"

namespace meshplug::control_plane::testing {

// "$TEST_TMPDIR/<name>.db" (/tmp outside Bazel), with no file of that store left.
inline std::string FreshStorePath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/" + name + ".db";
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(path + suffix);
  return path;
}

inline std::unique_ptr<store::SqliteStore> FreshSqliteStore(const std::string& name) {
  return *store::SqliteStore::Open(FreshStorePath(name));
}

}  // namespace meshplug::control_plane::testing
