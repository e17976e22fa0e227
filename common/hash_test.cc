#include "common/hash.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace meshplug {
namespace {

// FIPS 180-2's examples, then one longer than a block; the context is reused between calls.
TEST(Sha256HexTest, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// Each thread has its own context: threads hashing different inputs at once get what one
// thread gets for each.
TEST(Sha256HexTest, ThreadsHashAlike) {
  std::vector<std::string> inputs;
  for (int i = 0; i < 4; ++i) inputs.push_back(std::string(static_cast<size_t>(1 + 70 * i), static_cast<char>('a' + i)));
  std::vector<std::string> expected;
  for (const auto& input : inputs) expected.push_back(Sha256Hex(input));
  std::vector<std::vector<std::string>> results(inputs.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < inputs.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) results[t].push_back(Sha256Hex(inputs[t]));
    });
  }
  for (auto& t : threads) t.join();
  for (size_t t = 0; t < inputs.size(); ++t) {
    for (const auto& r : results[t]) ASSERT_EQ(r, expected[t]) << "input " << t;
  }
}

}  // namespace
}  // namespace meshplug
