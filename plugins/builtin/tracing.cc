// tracing: W3C Trace Context. Continues the caller's trace with a new span id, or starts
// a sampled trace, and passes the result upstream in `traceparent`.
#include <cstdint>
#include <string>

#include "common/random.h"
#include "common/strings.h"
#include "plugins/api/http_fields.h"
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::Verdict;

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if ((c < '0' || c > '9') && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

// Whether every digit is '0' (an invalid id).
bool AllZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", ids not all zero.
bool ValidTraceParent(std::string_view v) {
  return v.size() == 55 && v.substr(0, 3) == "00-" && v[35] == '-' && v[52] == '-' &&
         IsLowerHex(v.substr(3, 32)) && IsLowerHex(v.substr(36, 16)) &&
         IsLowerHex(v.substr(53, 2)) && !AllZero(v.substr(3, 32)) && !AllZero(v.substr(36, 16));
}

// 16 lowercase hex digits per random word at `out`, never all zero (each word has its
// lowest bit set).
void PutRandomHex(char* out, size_t words) {
  for (size_t w = 0; w < words; ++w) {
    const uint64_t word = RandomU64() | 1;
    out = PutHex(out, std::string_view(reinterpret_cast<const char*>(&word), sizeof word));
  }
}

class Tracing final : public HttpRequestModule {
 public:
  using HttpRequestModule::HttpRequestModule;

  Verdict RequestHeaders(plugins::HttpContext& ctx) override {
    // Scanned for, not looked up by name (plugins/api/http_fields.h), and written in place:
    // every request comes here.
    const std::string_view incoming = UnknownFieldValue(ctx.request, kTraceParentKey);
    std::string value = "00-________________________________-________________-__";
    if (ValidTraceParent(incoming)) {
      incoming.copy(value.data() + 3, 32, 3);  // the caller's trace id
      // and its flags that are defined (sampled, random trace id): the others are
      // reserved and go on as zero (W3C Trace Context).
      const char low = incoming[54];
      const int flags = (low <= '9' ? low - '0' : low - 'a' + 10) & 0x3;
      value[53] = '0';
      value[54] = static_cast<char>('0' + flags);
    } else {
      PutRandomHex(value.data() + 3, 2);
      value.replace(53, 2, "01");  // sampled
    }
    PutRandomHex(value.data() + 36, 1);  // our span id
    EraseFields(ctx.request, [](const auto& f) { return HasUnknownName(f, kTraceParentKey); });
    ctx.request.insert(http::field::unknown, kTraceParentKey, value);  // Beast has no enum for it
    ctx.shared.insert_or_assign(std::string(kTraceParentKey), std::move(value));
    return Verdict::Continue();
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeTracing = MakeModule<Tracing>;

}  // namespace meshplug::plugins::builtin
