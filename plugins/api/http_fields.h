// A field of a header found by one pass over the fields: a few instructions per field,
// where the fields' own lookup compares names as strings, case-insensitively, down a
// tree. The agent looks up Host, Content-Length, Connection and others several times per
// request.
#pragma once

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/fields.hpp>
#include <iterator>
#include <string_view>

namespace meshplug::plugins {

inline boost::beast::http::fields::const_iterator FindField(const boost::beast::http::fields& fields,
                                                            boost::beast::http::field name) {
  BOOST_ASSERT(name != boost::beast::http::field::unknown);  // as Beast's own look-ups
  return std::find_if(fields.begin(), fields.end(), [name](const auto& f) { return f.name() == name; });
}

// The value of the first `name` field; "" when there is none.
inline std::string_view FieldValue(const boost::beast::http::fields& fields, boost::beast::http::field name) {
  auto it = FindField(fields, name);
  return it == fields.end() ? std::string_view() : it->value();
}

// The same for a name Beast has no enum for ("traceparent", "grpc-timeout"), compared as
// Beast compares names, ignoring case. Only such names: a field Beast knows is stored
// under its enum and is not found by these.
inline bool HasUnknownName(const boost::beast::http::fields::value_type& f, std::string_view name) {
  return f.name() == boost::beast::http::field::unknown && boost::beast::iequals(f.name_string(), name);
}

inline boost::beast::http::fields::const_iterator FindUnknownField(const boost::beast::http::fields& fields,
                                                                   std::string_view name) {
  BOOST_ASSERT(boost::beast::http::string_to_field(name) == boost::beast::http::field::unknown);
  return std::find_if(fields.begin(), fields.end(), [name](const auto& f) { return HasUnknownName(f, name); });
}

inline std::string_view UnknownFieldValue(const boost::beast::http::fields& fields, std::string_view name) {
  auto it = FindUnknownField(fields, name);
  return it == fields.end() ? std::string_view() : it->value();
}

// Erases every field for which `drop(field)` holds, keeping the others' order.
template <class Drop>
void EraseFields(boost::beast::http::fields& fields, Drop drop) {
  for (auto it = fields.begin(); it != fields.end();) it = drop(*it) ? fields.erase(it) : std::next(it);
}

}  // namespace meshplug::plugins
