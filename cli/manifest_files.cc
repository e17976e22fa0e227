#include "cli/manifest_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "common/strings.h"

namespace meshplug::cli {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<v1::Manifest> ReadOne(const std::string& source, std::istream& in) {
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(Cat(source, ": cannot read"));
  v1::Manifest m;
  m.set_source(source);
  m.set_content(content.str());
  return m;
}

bool IsManifestFile(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

}  // namespace

absl::StatusOr<std::vector<v1::Manifest>> ReadManifests(const std::vector<std::string>& paths) {
  std::vector<v1::Manifest> out;
  for (const auto& path : paths) {
    if (path == "-") {
      auto m = ReadOne("-", std::cin);
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
      auto m = ReadOne(f.string(), in);
      if (!m.ok()) return m.status();
      out.push_back(std::move(*m));
    }
  }
  return out;
}

}  // namespace meshplug::cli
