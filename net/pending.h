// What a function on the per-request path returns when its work usually finishes at once:
// nullopt when it did, else the awaitable that finishes it. The function itself is not a
// coroutine, so the usual case costs no coroutine frame (its allocation, and a resume
// through the awaitable thread; docs/benchmarks.md §4.2 counts what that saved):
//
//   if (net::Pending rest = net::StartWrite(...)) co_await std::move(*rest);
#pragma once

#include <utility>  // before Asio 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <optional>

namespace meshplug::net {

using Pending = std::optional<boost::asio::awaitable<void>>;

}  // namespace meshplug::net
