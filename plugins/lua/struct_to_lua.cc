#include "plugins/lua/struct_to_lua.h"

#include <google/protobuf/struct.pb.h>

#include <cmath>

namespace meshplug::plugins::lua {

void PushStruct(lua_State* L, const google::protobuf::Struct& config) {
  luaL_checkstack(L, 3, "PluginConfig nested too deeply");
  lua_createtable(L, 0, config.fields_size());
  for (const auto& [key, value] : config.fields()) {
    if (value.kind_case() == google::protobuf::Value::kNullValue) continue;
    lua_pushlstring(L, key.data(), key.size());
    PushValue(L, value);
    lua_rawset(L, -3);
  }
}

void PushValue(lua_State* L, const google::protobuf::Value& value) {
  using google::protobuf::Value;
  switch (value.kind_case()) {
    case Value::kNumberValue: {
      const double number = value.number_value();
      lua_Integer whole = 0;
      if (std::trunc(number) == number && lua_numbertointeger(number, &whole)) {
        lua_pushinteger(L, whole);
      } else {
        lua_pushnumber(L, number);
      }
      return;
    }
    case Value::kStringValue:
      lua_pushlstring(L, value.string_value().data(), value.string_value().size());
      return;
    case Value::kBoolValue:
      lua_pushboolean(L, value.bool_value());
      return;
    case Value::kStructValue:
      PushStruct(L, value.struct_value());
      return;
    case Value::kListValue: {
      luaL_checkstack(L, 3, "PluginConfig nested too deeply");
      const auto& list = value.list_value();
      lua_createtable(L, list.values_size(), 0);
      lua_Integer index = 0;
      for (const Value& item : list.values()) {
        // A null inside a list would leave a hole; keep the positions with false.
        if (item.kind_case() == Value::kNullValue) {
          lua_pushboolean(L, 0);
        } else {
          PushValue(L, item);
        }
        lua_rawseti(L, -2, ++index);
      }
      return;
    }
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
      lua_pushnil(L);
      return;
  }
  lua_pushnil(L);
}

}  // namespace meshplug::plugins::lua
