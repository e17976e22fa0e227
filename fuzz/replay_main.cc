// Runs a fuzz target's LLVMFuzzerTestOneInput over every file in the directories given on
// the command line, as a GoogleTest case: the checked-in corpus and regression inputs run
// in the normal suite (gcc, no fuzzing engine), and one that crashes, trips an invariant
// or hangs fails it. The input being run is printed first, so a crash names it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

std::vector<std::string> directories;

TEST(Replay, EveryCheckedInInputRunsClean) {
  std::vector<std::filesystem::path> inputs;
  for (const std::string& dir : directories) {
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      if (entry.is_regular_file()) inputs.push_back(entry.path());
    }
  }
  std::sort(inputs.begin(), inputs.end());
  ASSERT_FALSE(inputs.empty()) << "no inputs under the corpus and regression directories";
  for (const auto& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::cerr << "replaying " << path.string() << " (" << bytes.size() << " bytes)" << std::endl;
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  RecordProperty("inputs", static_cast<int>(inputs.size()));
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  directories.assign(argv + 1, argv + argc);
  return RUN_ALL_TESTS();
}
