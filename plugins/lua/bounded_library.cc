#include "plugins/lua/bounded_library.h"

#include <cctype>
#include <cstddef>
#include <cstring>

#include "plugins/lua/lua_state.h"

// Everything here may raise a Lua error (longjmp) at any point, so the frames hold only
// trivially destructible values: the matcher state is a plain struct, output goes through
// luaL_Buffer, and no C++ object with a destructor is ever live across a call that raises.
namespace meshplug::plugins::lua {
namespace {

constexpr char kEscape = '%';
constexpr char kSpecials[] = "^$*+?.([%-";
constexpr int kMaxCaptures = 32;
constexpr int kMaxDepth = 200;        // nested pattern items, as Lua's own matcher
constexpr uint32_t kStepBatch = 256;  // matcher steps per charge
constexpr uint64_t kStepsPerInstruction = 16;

constexpr ptrdiff_t kNoMatch = -1;
constexpr ptrdiff_t kUnfinished = -1;  // capture length while its ')' is not reached
constexpr ptrdiff_t kPosition = -2;    // a "()" capture

struct Capture {
  size_t start;
  ptrdiff_t length;
};

struct Matcher {
  lua_State* L;
  const char* subject;
  size_t subject_size;
  const char* pattern;
  size_t pattern_size;
  int level;  // captures opened
  int depth;
  uint32_t steps;
  Capture captures[kMaxCaptures];
};

void Begin(Matcher& m, lua_State* L, const char* subject, size_t subject_size, const char* pattern,
           size_t pattern_size) {
  m.L = L;
  m.subject = subject;
  m.subject_size = subject_size;
  m.pattern = pattern;
  m.pattern_size = pattern_size;
  m.level = 0;
  m.depth = 0;
  m.steps = 0;
}

void Restart(Matcher& m) {
  m.level = 0;
  m.depth = 0;
}

void Step(Matcher& m) {
  if (++m.steps < kStepBatch) return;
  m.steps = 0;
  LuaState::Charge(m.L, kStepBatch / kStepsPerInstruction);
}

unsigned char At(const Matcher& m, size_t p) { return static_cast<unsigned char>(m.pattern[p]); }

// The pattern index just past the single-character class that starts at p.
size_t ClassEnd(Matcher& m, size_t p) {
  const char c = m.pattern[p++];
  if (c == kEscape) {
    if (p >= m.pattern_size) luaL_error(m.L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c != '[') return p;
  if (p < m.pattern_size && m.pattern[p] == '^') ++p;
  // The first character of a set is literal, even ']'.
  do {
    if (p >= m.pattern_size) luaL_error(m.L, "malformed pattern (missing ']')");
    const char member = m.pattern[p++];
    if (member == kEscape && p < m.pattern_size) ++p;
  } while (p >= m.pattern_size || m.pattern[p] != ']');
  return p + 1;
}

bool MatchClass(unsigned char c, unsigned char cl) {
  bool result;
  switch (std::tolower(cl)) {
    case 'a': result = std::isalpha(c); break;
    case 'c': result = std::iscntrl(c); break;
    case 'd': result = std::isdigit(c); break;
    case 'g': result = std::isgraph(c); break;
    case 'l': result = std::islower(c); break;
    case 'p': result = std::ispunct(c); break;
    case 's': result = std::isspace(c); break;
    case 'u': result = std::isupper(c); break;
    case 'w': result = std::isalnum(c); break;
    case 'x': result = std::isxdigit(c); break;
    case 'z': result = c == 0; break;  // deprecated in the manual, still in Lua 5.4
    default: return cl == c;
  }
  return std::isupper(cl) ? !result : result;
}

// Whether c is in the set "[...]" that starts at p and whose ']' is at close.
bool MatchSet(const Matcher& m, unsigned char c, size_t p, size_t close) {
  bool in = true;
  ++p;  // '['
  if (At(m, p) == '^') {
    in = false;
    ++p;
  }
  for (; p < close; ++p) {
    if (At(m, p) == kEscape) {
      ++p;
      if (MatchClass(c, At(m, p))) return in;
    } else if (p + 2 < close && At(m, p + 1) == '-') {
      if (At(m, p) <= c && c <= At(m, p + 2)) return in;
      p += 2;
    } else if (At(m, p) == c) {
      return in;
    }
  }
  return !in;
}

bool SingleMatch(Matcher& m, size_t s, size_t p, size_t ep) {
  if (s >= m.subject_size) return false;
  const auto c = static_cast<unsigned char>(m.subject[s]);
  switch (m.pattern[p]) {
    case '.': return true;
    case kEscape: return MatchClass(c, At(m, p + 1));
    case '[': return MatchSet(m, c, p, ep - 1);
    default: return At(m, p) == c;
  }
}

ptrdiff_t Match(Matcher& m, size_t s, size_t p);

ptrdiff_t MaxExpand(Matcher& m, size_t s, size_t p, size_t ep) {
  size_t count = 0;
  while (SingleMatch(m, s + count, p, ep)) {
    Step(m);
    ++count;
  }
  // Longest first, giving back one character at a time.
  for (size_t i = count + 1; i-- > 0;) {
    const ptrdiff_t e = Match(m, s + i, ep + 1);
    if (e != kNoMatch) return e;
  }
  return kNoMatch;
}

ptrdiff_t MinExpand(Matcher& m, size_t s, size_t p, size_t ep) {
  for (;;) {
    const ptrdiff_t e = Match(m, s, ep + 1);
    if (e != kNoMatch) return e;
    if (!SingleMatch(m, s, p, ep)) return kNoMatch;
    ++s;
  }
}

ptrdiff_t StartCapture(Matcher& m, size_t s, size_t p, ptrdiff_t what) {
  if (m.level >= kMaxCaptures) luaL_error(m.L, "too many captures");
  m.captures[m.level] = Capture{s, what};
  ++m.level;
  const ptrdiff_t e = Match(m, s, p);
  if (e == kNoMatch) --m.level;
  return e;
}

ptrdiff_t EndCapture(Matcher& m, size_t s, size_t p) {
  int open = m.level - 1;
  while (open >= 0 && m.captures[open].length != kUnfinished) --open;
  if (open < 0) luaL_error(m.L, "invalid pattern capture");
  m.captures[open].length = static_cast<ptrdiff_t>(s - m.captures[open].start);
  const ptrdiff_t e = Match(m, s, p);
  if (e == kNoMatch) m.captures[open].length = kUnfinished;
  return e;
}

ptrdiff_t MatchBalance(Matcher& m, size_t s, size_t p) {
  if (p + 1 >= m.pattern_size) luaL_error(m.L, "malformed pattern (missing arguments to '%%b')");
  if (s >= m.subject_size || m.subject[s] != m.pattern[p]) return kNoMatch;
  const char open = m.pattern[p], close = m.pattern[p + 1];
  int nesting = 1;
  for (size_t i = s + 1; i < m.subject_size; ++i) {
    Step(m);
    if (m.subject[i] == close) {
      if (--nesting == 0) return static_cast<ptrdiff_t>(i + 1);
    } else if (m.subject[i] == open) {
      ++nesting;
    }
  }
  return kNoMatch;
}

int CaptureIndex(Matcher& m, char digit) {
  const int index = digit - '1';
  if (index < 0 || index >= m.level || m.captures[index].length == kUnfinished) {
    luaL_error(m.L, "invalid capture index %%%d", index + 1);
  }
  return index;
}

ptrdiff_t MatchBackReference(Matcher& m, size_t s, char digit) {
  const Capture& c = m.captures[CaptureIndex(m, digit)];
  if (c.length < 0) return kNoMatch;  // a position capture matches no text
  const auto length = static_cast<size_t>(c.length);
  if (m.subject_size - s < length || std::memcmp(m.subject + c.start, m.subject + s, length) != 0) return kNoMatch;
  return static_cast<ptrdiff_t>(s + length);
}

// The end of a match of the pattern from index p at subject offset s, or kNoMatch.
ptrdiff_t MatchItems(Matcher& m, size_t s, size_t p) {
  for (;;) {
    Step(m);
    if (p >= m.pattern_size) return static_cast<ptrdiff_t>(s);
    switch (m.pattern[p]) {
      case '(':
        if (p + 1 < m.pattern_size && m.pattern[p + 1] == ')') return StartCapture(m, s, p + 2, kPosition);
        return StartCapture(m, s, p + 1, kUnfinished);
      case ')':
        return EndCapture(m, s, p + 1);
      case '$':
        if (p + 1 == m.pattern_size) return s == m.subject_size ? static_cast<ptrdiff_t>(s) : kNoMatch;
        break;  // a '$' elsewhere is an ordinary character
      case kEscape:
        if (p + 1 >= m.pattern_size) break;  // ClassEnd reports it
        if (m.pattern[p + 1] == 'b') {
          const ptrdiff_t e = MatchBalance(m, s, p + 2);
          if (e == kNoMatch) return kNoMatch;
          s = static_cast<size_t>(e);
          p += 4;
          continue;
        }
        if (m.pattern[p + 1] == 'f') {
          p += 2;
          if (p >= m.pattern_size || m.pattern[p] != '[') luaL_error(m.L, "missing '[' after '%%f' in pattern");
          const size_t ep = ClassEnd(m, p);
          const auto before = static_cast<unsigned char>(s == 0 ? '\0' : m.subject[s - 1]);
          const auto here = static_cast<unsigned char>(s < m.subject_size ? m.subject[s] : '\0');
          if (MatchSet(m, before, p, ep - 1) || !MatchSet(m, here, p, ep - 1)) return kNoMatch;
          p = ep;
          continue;
        }
        if (std::isdigit(At(m, p + 1))) {
          const ptrdiff_t e = MatchBackReference(m, s, m.pattern[p + 1]);
          if (e == kNoMatch) return kNoMatch;
          s = static_cast<size_t>(e);
          p += 2;
          continue;
        }
        break;
      default:
        break;
    }
    const size_t ep = ClassEnd(m, p);
    const char suffix = ep < m.pattern_size ? m.pattern[ep] : '\0';
    if (!SingleMatch(m, s, p, ep)) {
      if (suffix == '*' || suffix == '?' || suffix == '-') {  // zero repetitions will do
        p = ep + 1;
        continue;
      }
      return kNoMatch;
    }
    switch (suffix) {
      case '?': {
        const ptrdiff_t e = Match(m, s + 1, ep + 1);
        if (e != kNoMatch) return e;
        p = ep + 1;
        continue;
      }
      case '+': return MaxExpand(m, s + 1, p, ep);
      case '*': return MaxExpand(m, s, p, ep);
      case '-': return MinExpand(m, s, p, ep);
      default:
        ++s;
        p = ep;
        continue;
    }
  }
}

ptrdiff_t Match(Matcher& m, size_t s, size_t p) {
  if (++m.depth > kMaxDepth) luaL_error(m.L, "pattern too complex");
  const ptrdiff_t e = MatchItems(m, s, p);
  --m.depth;
  return e;
}

void PushCapture(Matcher& m, int i, size_t start, size_t end) {
  if (i >= m.level) {
    if (i != 0) luaL_error(m.L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(m.L, m.subject + start, end - start);  // no captures: the whole match
    return;
  }
  const Capture& c = m.captures[i];
  if (c.length == kUnfinished) luaL_error(m.L, "unfinished capture");
  if (c.length == kPosition) {
    lua_pushinteger(m.L, static_cast<lua_Integer>(c.start) + 1);
  } else {
    lua_pushlstring(m.L, m.subject + c.start, static_cast<size_t>(c.length));
  }
}

// Pushes the captures (the whole match when there are none and `whole` is set).
int PushCaptures(Matcher& m, size_t start, size_t end, bool whole) {
  const int n = m.level == 0 && whole ? 1 : m.level;
  luaL_checkstack(m.L, n, "too many captures");
  for (int i = 0; i < n; ++i) PushCapture(m, i, start, end);
  return n;
}

bool HasSpecials(const char* p, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    if (std::strchr(kSpecials, p[i]) != nullptr && p[i] != '\0') return true;
  }
  return false;
}

// Lua 5.4's rule for a start position: negative counts from the end, out of range clamps.
size_t StartIndex(lua_Integer pos, size_t size) {
  if (pos > 0) return static_cast<size_t>(pos);
  if (pos == 0) return 1;
  if (pos < -static_cast<lua_Integer>(size)) return 1;
  return size + static_cast<size_t>(pos) + 1;
}

int FindOrMatch(lua_State* L, bool find) {
  size_t size = 0, pattern_size = 0;
  const char* s = luaL_checklstring(L, 1, &size);
  const char* p = luaL_checklstring(L, 2, &pattern_size);
  const size_t init = StartIndex(luaL_optinteger(L, 3, 1), size) - 1;
  if (init > size) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || !HasSpecials(p, pattern_size))) {
    LuaState::Charge(L, (size - init) / 64 + 1);
    const void* at = pattern_size == 0 ? s + init : memmem(s + init, size - init, p, pattern_size);
    if (at == nullptr) {
      luaL_pushfail(L);
      return 1;
    }
    const size_t start = static_cast<size_t>(static_cast<const char*>(at) - s);
    lua_pushinteger(L, static_cast<lua_Integer>(start) + 1);
    lua_pushinteger(L, static_cast<lua_Integer>(start + pattern_size));
    return 2;
  }
  const bool anchored = pattern_size > 0 && p[0] == '^';
  Matcher m;
  Begin(m, L, s, size, p + anchored, pattern_size - anchored);
  size_t start = init;
  do {
    Restart(m);
    const ptrdiff_t end = Match(m, start, 0);
    if (end != kNoMatch) {
      if (!find) return PushCaptures(m, start, static_cast<size_t>(end), true);
      lua_pushinteger(L, static_cast<lua_Integer>(start) + 1);
      lua_pushinteger(L, end);
      return PushCaptures(m, 0, 0, false) + 2;
    }
  } while (start++ < size && !anchored);
  luaL_pushfail(L);
  return 1;
}

int Find(lua_State* L) { return FindOrMatch(L, true); }
int MatchFunction(lua_State* L) { return FindOrMatch(L, false); }

struct GmatchState {
  size_t next;          // where the next search starts
  ptrdiff_t last_end;   // end of the last match, so an empty match there is skipped
};

int GmatchStep(lua_State* L) {
  size_t size = 0, pattern_size = 0;
  const char* s = lua_tolstring(L, lua_upvalueindex(1), &size);
  const char* p = lua_tolstring(L, lua_upvalueindex(2), &pattern_size);
  auto* state = static_cast<GmatchState*>(lua_touserdata(L, lua_upvalueindex(3)));
  Matcher m;
  Begin(m, L, s, size, p, pattern_size);  // gmatch has no anchor
  for (size_t start = state->next; start <= size; ++start) {
    Restart(m);
    const ptrdiff_t end = Match(m, start, 0);
    if (end != kNoMatch && end != state->last_end) {
      state->next = static_cast<size_t>(end);
      state->last_end = end;
      return PushCaptures(m, start, static_cast<size_t>(end), true);
    }
  }
  state->next = size + 1;
  return 0;
}

int Gmatch(lua_State* L) {
  size_t size = 0;
  luaL_checklstring(L, 1, &size);
  luaL_checkstring(L, 2);
  const size_t init = StartIndex(luaL_optinteger(L, 3, 1), size) - 1;
  lua_settop(L, 2);
  auto* state = static_cast<GmatchState*>(lua_newuserdatauv(L, sizeof(GmatchState), 0));
  state->next = init > size ? size + 1 : init;
  state->last_end = kNoMatch;
  lua_pushcclosure(L, GmatchStep, 3);
  return 1;
}

// Appends the replacement string at index 3 with its %0-%9 and %%.
void AddReplacementString(Matcher& m, luaL_Buffer& b, size_t start, size_t end) {
  size_t size = 0;
  const char* r = lua_tolstring(m.L, 3, &size);
  for (size_t i = 0; i < size; ++i) {
    Step(m);
    if (r[i] != kEscape) {
      luaL_addchar(&b, r[i]);
      continue;
    }
    ++i;
    if (i < size && r[i] == kEscape) {
      luaL_addchar(&b, kEscape);
    } else if (i < size && r[i] == '0') {
      luaL_addlstring(&b, m.subject + start, end - start);
    } else if (i < size && std::isdigit(static_cast<unsigned char>(r[i]))) {
      PushCapture(m, r[i] - '1', start, end);
      luaL_tolstring(m.L, -1, nullptr);
      lua_remove(m.L, -2);
      luaL_addvalue(&b);
    } else {
      luaL_error(m.L, "invalid use of '%c' in replacement string", kEscape);
    }
  }
}

// Appends the replacement of one match; false when the match is kept as it was.
bool AddReplacement(Matcher& m, luaL_Buffer& b, size_t start, size_t end, int type) {
  lua_State* L = m.L;
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    AddReplacementString(m, b, start, end);
    return true;
  }
  if (type == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    const int n = PushCaptures(m, start, end, true);
    lua_call(L, n, 1);
  } else {
    PushCapture(m, 0, start, end);
    lua_gettable(L, 3);
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    luaL_addlstring(&b, m.subject + start, end - start);
    return false;
  }
  if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(&b);
  return true;
}

int Gsub(lua_State* L) {
  size_t size = 0, pattern_size = 0;
  const char* s = luaL_checklstring(L, 1, &size);
  const char* p = luaL_checklstring(L, 2, &pattern_size);
  const int type = lua_type(L, 3);
  const lua_Integer max_replacements = luaL_optinteger(L, 4, static_cast<lua_Integer>(size) + 1);
  luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION || type == LUA_TTABLE, 3,
                   "string/function/table");
  const bool anchored = pattern_size > 0 && p[0] == '^';
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  Matcher m;
  Begin(m, L, s, size, p + anchored, pattern_size - anchored);
  size_t at = 0;
  ptrdiff_t last_end = kNoMatch;
  lua_Integer replaced = 0;
  bool changed = false;
  while (replaced < max_replacements) {
    Restart(m);
    const ptrdiff_t end = Match(m, at, 0);
    if (end != kNoMatch && end != last_end) {
      ++replaced;
      changed = AddReplacement(m, b, at, static_cast<size_t>(end), type) || changed;
      at = static_cast<size_t>(end);
      last_end = end;
    } else if (at < size) {
      luaL_addchar(&b, s[at++]);
    } else {
      break;
    }
    if (anchored) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, s + at, size - at);
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, replaced);
  return 2;
}

// Calls the stock function in upvalue 1 with all arguments.
int CallStock(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

int Rep(lua_State* L) {
  size_t size = 0, separator_size = 0;
  luaL_checklstring(L, 1, &size);
  const lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &separator_size);
  if (n <= 0 || size + separator_size == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  // The stock function refuses results too large for Lua; charge what it would copy.
  const double bytes = static_cast<double>(n) * static_cast<double>(size + separator_size);
  LuaState::Charge(L, static_cast<uint64_t>(bytes > 1e18 ? 1e18 : bytes) / 64 + 1);
  return CallStock(L);
}

// The number of elements `t` (at index 1) holds, as # sees it.
lua_Integer Length(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  return luaL_len(L, 1);
}

void ChargeElements(lua_State* L, lua_Integer count) {
  if (count > 0) LuaState::Charge(L, static_cast<uint64_t>(count) / 8 + 1);
}

int ChargedByLength(lua_State* L) {
  ChargeElements(L, Length(L));
  return CallStock(L);
}

int TableConcat(lua_State* L) {
  const lua_Integer last = luaL_opt(L, luaL_checkinteger, 4, Length(L));
  const lua_Integer first = luaL_optinteger(L, 3, 1);
  if (last >= first) ChargeElements(L, last - first);
  return CallStock(L);
}

int TableMove(lua_State* L) {
  const lua_Integer first = luaL_checkinteger(L, 2);
  const lua_Integer last = luaL_checkinteger(L, 3);
  // Charged before a single element moves: a range of 2^62 breaches at once.
  if (last >= first) ChargeElements(L, last / 2 - first / 2);
  return CallStock(L);
}

int TableUnpack(lua_State* L) {
  const lua_Integer first = luaL_optinteger(L, 2, 1);
  const lua_Integer last = luaL_opt(L, luaL_checkinteger, 3, luaL_len(L, 1));
  if (last >= first) ChargeElements(L, last / 2 - first / 2);
  return CallStock(L);
}

int TableSort(lua_State* L) {
  const lua_Integer n = Length(L);
  lua_Integer log2 = 1;
  for (lua_Integer k = n; k > 1; k >>= 1) ++log2;
  ChargeElements(L, n * log2);
  return CallStock(L);
}

int ChargedByStringSize(lua_State* L) {
  size_t size = 0;
  luaL_checklstring(L, 1, &size);
  LuaState::Charge(L, size / 64 + 1);
  return CallStock(L);
}

void Wrap(lua_State* L, int library, const char* name, lua_CFunction wrapper) {
  lua_getfield(L, library, name);
  lua_pushcclosure(L, wrapper, 1);
  lua_setfield(L, library, name);
}

void Set(lua_State* L, int library, const char* name, lua_CFunction function) {
  lua_pushcfunction(L, function);
  lua_setfield(L, library, name);
}

}  // namespace

void BoundLongRunningFunctions(lua_State* L, int string_lib, int table_lib, int utf8_lib) {
  string_lib = lua_absindex(L, string_lib);
  table_lib = lua_absindex(L, table_lib);
  utf8_lib = lua_absindex(L, utf8_lib);
  Set(L, string_lib, "find", Find);
  Set(L, string_lib, "match", MatchFunction);
  Set(L, string_lib, "gmatch", Gmatch);
  Set(L, string_lib, "gsub", Gsub);
  Wrap(L, string_lib, "rep", Rep);
  for (const char* name : {"reverse", "lower", "upper", "byte"}) Wrap(L, string_lib, name, ChargedByStringSize);
  Wrap(L, table_lib, "concat", TableConcat);
  Wrap(L, table_lib, "move", TableMove);
  Wrap(L, table_lib, "unpack", TableUnpack);
  Wrap(L, table_lib, "sort", TableSort);
  for (const char* name : {"insert", "remove"}) Wrap(L, table_lib, name, ChargedByLength);
  for (const char* name : {"len", "codepoint", "offset"}) Wrap(L, utf8_lib, name, ChargedByStringSize);
}

}  // namespace meshplug::plugins::lua
