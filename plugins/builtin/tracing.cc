// tracing: W3C Trace Context. Continues the caller's trace with a new span id, or starts
// a sampled trace, and passes the result upstream in `traceparent`.
#include <cstdint>
#include <string>

#include "common/random.h"
#include "plugins/builtin/module.h"
#include "common/strings.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::Verdict;

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if ((c < '0' || c > '9') && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", ids not all zero.
bool ValidTraceParent(std::string_view v) {
  return v.size() == 55 && v.substr(0, 3) == "00-" && v[35] == '-' && v[52] == '-' &&
         IsLowerHex(v.substr(3, 32)) && IsLowerHex(v.substr(36, 16)) &&
         IsLowerHex(v.substr(53, 2)) && v.substr(3, 32) != std::string(32, '0') &&
         v.substr(36, 16) != std::string(16, '0');
}

// Lowercase hex digits, never all zero (each word has its lowest bit set).
std::string RandomHex(size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(digits, '0');
  uint64_t word = 0;
  for (size_t i = 0; i < digits; i += 2) {  // a byte, two digits, at a time
    if (i % 16 == 0) word = RandomU64() | 1;
    out[i] = kHex[word & 0xf];
    if (i + 1 < digits) out[i + 1] = kHex[(word >> 4) & 0xf];
    word >>= 8;
  }
  return out;
}

class Tracing final : public Module<plugins::ImmediateHttpPlugin> {
 public:
  using Module::Module;

  Verdict RequestHeaders(plugins::HttpContext& ctx) override {
    std::string_view incoming = ctx.request["traceparent"];
    std::string value =
        ValidTraceParent(incoming)
            ? Cat("00-", incoming.substr(3, 32), "-", RandomHex(16), "-",
                           incoming.substr(53, 2))
            : Cat("00-", RandomHex(32), "-", RandomHex(16), "-01");
    ctx.request.set("traceparent", value);
    ctx.shared.insert_or_assign(std::string(kTraceParentKey), std::move(value));
    return Verdict::Continue();
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeTracing = MakeModule<Tracing>;

}  // namespace meshplug::plugins::builtin
