// PluginConfig values (protobuf Struct) as Lua tables.
#pragma once

#include <lua.hpp>

namespace google::protobuf {
class Struct;
class Value;
}  // namespace google::protobuf

namespace meshplug::plugins::lua {

// Pushes `config` as a table: objects become tables with string keys, lists become
// sequences (1-based), numbers become integers when they are whole, null fields are left
// out (Lua tables cannot hold nil). Raises a Lua error when the stack cannot grow.
void PushStruct(lua_State* L, const google::protobuf::Struct& config);
void PushValue(lua_State* L, const google::protobuf::Value& value);

}  // namespace meshplug::plugins::lua
