#include "cli/manifest_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "common/strings.h"
#include "resources/manifest.h"

namespace meshplug::cli {
namespace {

namespace fs = std::filesystem;

// Reads `in` whole unless that would pass `budget` bytes (what is left of the apply's).
absl::StatusOr<v1::Manifest> ReadOne(const std::string& source, std::istream& in, size_t& budget) {
  std::string content;
  char buf[64 * 1024];
  while (in.read(buf, sizeof buf), in.gcount() > 0) {
    const size_t n = static_cast<size_t>(in.gcount());
    if (n > budget) {
      return absl::InvalidArgumentError(Cat(source, ": the manifests are larger than ",
                                            resources::ManifestLimits().max_bytes_of_text,
                                            " bytes; apply them in parts"));
    }
    budget -= n;
    content.append(buf, n);
  }
  if (in.bad()) return absl::InvalidArgumentError(Cat(source, ": cannot read"));
  if (const size_t valid = ValidUtf8Prefix(content); valid < content.size()) {
    return absl::InvalidArgumentError(
        Cat(source, ": line ", LineAt(content, valid), ": not UTF-8 text (manifests are YAML or JSON in UTF-8)"));
  }
  v1::Manifest m;
  m.set_source(source);
  m.set_content(std::move(content));
  return m;
}

bool IsManifestFile(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

}  // namespace

absl::StatusOr<std::vector<v1::Manifest>> ReadManifests(const std::vector<std::string>& paths) {
  std::vector<v1::Manifest> out;
  size_t budget = resources::ManifestLimits().max_bytes_of_text;  // the control plane's
  for (const auto& path : paths) {
    if (path == "-") {
      auto m = ReadOne("-", std::cin, budget);
      if (!m.ok()) return m.status();
      out.push_back(std::move(*m));
      continue;
    }
    std::error_code ec;
    std::vector<fs::path> files;
    if (fs::is_directory(path, ec)) {
      for (const auto& entry : fs::recursive_directory_iterator(path, ec)) {
        if (entry.is_regular_file() && IsManifestFile(entry.path())) files.push_back(entry.path());
      }
      if (ec) return absl::InvalidArgumentError(Cat(path, ": ", ec.message()));
      std::sort(files.begin(), files.end());
      if (files.empty()) return absl::InvalidArgumentError(Cat(path, ": no .yaml, .yml or .json files in it"));
    } else if (fs::exists(path, ec)) {
      files.push_back(path);
    } else {
      return absl::NotFoundError(Cat(path, ": no such file or folder"));
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) return absl::InvalidArgumentError(Cat(f.string(), ": cannot open"));
      auto m = ReadOne(f.string(), in, budget);
      if (!m.ok()) return m.status();
      out.push_back(std::move(*m));
    }
  }
  return out;
}

}  // namespace meshplug::cli
