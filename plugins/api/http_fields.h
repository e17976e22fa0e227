// A known field of a header found by one pass comparing the fields' enums: a few
// instructions per field, where the fields' own lookup compares names as strings down a
// tree. The agent looks up Host, Content-Length, Connection and others several times per
// request.
#pragma once

#include <algorithm>
#include <boost/beast/http/fields.hpp>
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

}  // namespace meshplug::plugins
