#include "agent/proxy/body.h"

#include <algorithm>
#include <array>
#include <optional>

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/chunk_encode.hpp>

#include "net/read_http.h"

namespace meshplug::agent::proxy {

void ThrowPluginError(const std::string& plugin) {
  try {
    throw;
  } catch (const std::exception& e) {
    throw PluginError(plugin, e.what());
  } catch (...) {
    throw PluginError(plugin, "unknown exception");
  }
}

template <bool isRequest>
net::Pending BodySource<isRequest>::Next(std::string& out, beast::error_code& ec) {
  out.clear();
  ec = {};
  return Continue(out, ec);
}

template <bool isRequest>
net::Pending BodySource<isRequest>::Continue(std::string& out, beast::error_code& ec) {
  // One parse may yield only chunk framing and no body bytes; keep going until it does.
  while (out.empty() && !parser_.is_done()) {
    want_ = static_cast<size_t>(
        std::min<uint64_t>(kBodyPieceBytes, parser_.content_length_remaining().value_or(kBodyPieceBytes)));
    if (scratch_size_ < want_) {
      scratch_.reset(new char[want_]);
      scratch_size_ = want_;
    }
    parser_.get().body().data = scratch_.get();
    parser_.get().body().size = want_;
    net::Pending read = net::StartReadHttp(stream_, buffer_, parser_, net::ParseUntil::kProgress, idle_timeout_, ec);
    if (read) return FinishRead(std::move(*read), out, ec);
    if (!Take(out, ec)) break;
  }
  return std::nullopt;
}

template <bool isRequest>
bool BodySource<isRequest>::Take(std::string& out, beast::error_code& ec) {
  if (ec == http::error::need_buffer) ec = {};
  out.append(scratch_.get(), want_ - parser_.get().body().size);
  return !ec;
}

template <bool isRequest>
asio::awaitable<void> BodySource<isRequest>::FinishRead(asio::awaitable<void> read, std::string& out,
                                                       beast::error_code& ec) {
  co_await std::move(read);
  if (!Take(out, ec)) co_return;
  if (net::Pending more = Continue(out, ec)) co_await std::move(*more);
}

template class BodySource<true>;
template class BodySource<false>;

net::Pending WriteMessage(net::Stream& stream, std::string_view head, std::string_view body,
                          std::chrono::milliseconds timeout, beast::error_code& ec) {
  return net::StartWrite(stream, std::array<asio::const_buffer, 2>{asio::buffer(head), asio::buffer(body)}, timeout,
                         ec);
}

net::Pending BodySink::Write(std::string_view piece, bool last, beast::error_code& ec) {
  ec = {};
  if (framing_ == Framing::kNone) piece = {};
  if (framing_ != Framing::kChunked) {
    if (header_.empty() && piece.empty()) return std::nullopt;
    return Written(WriteMessage(stream_, header_, piece, idle_timeout_, ec));
  }
  // Chunk framing around the piece and the closing chunk, as Beast lays them out.
  std::vector<asio::const_buffer> out;
  if (!header_.empty()) out.push_back(asio::buffer(header_));
  if (!piece.empty()) {
    chunk_size_.emplace(piece.size());
    for (asio::const_buffer b : beast::buffers_range_ref(*chunk_size_)) out.push_back(b);
    out.push_back(asio::buffer(piece));
    out.push_back(asio::buffer("\r\n", 2));
  }
  if (last) {
    chunk_end_.emplace(trailers_);
    for (asio::const_buffer b : beast::buffers_range_ref(*chunk_end_)) out.push_back(b);
  }
  if (out.empty()) return std::nullopt;
  return Written(net::StartWrite(stream_, std::move(out), idle_timeout_, ec));
}

net::Pending BodySink::WriteHeader(beast::error_code& ec) {
  return Written(net::StartWrite(stream_, asio::buffer(header_), idle_timeout_, ec));
}

net::Pending BodySink::Written(net::Pending rest) {
  if (rest) return FinishWrite(std::move(*rest));
  header_.clear();
  return std::nullopt;
}

asio::awaitable<void> BodySink::FinishWrite(asio::awaitable<void> rest) {
  co_await std::move(rest);
  header_.clear();
}

BodyFilters::BodyFilters(std::vector<plugins::HttpPlugin*> plugins, bool request,
                         uint64_t buffer_limit)
    : request_(request), buffer_limit_(buffer_limit) {
  for (plugins::HttpPlugin* p : plugins) {
    plugins::BodyMode mode = request ? p->request_body_mode() : p->response_body_mode();
    if (mode != plugins::BodyMode::kNone) stages_.push_back({p, mode, {}});
  }
}

asio::awaitable<plugins::Verdict> BodyFilters::Run(plugins::HttpContext& ctx, std::string& piece,
                                                  bool last) {
  for (Stage& stage : stages_) {
    if (stage.mode == plugins::BodyMode::kBuffer) {
      stage.buffered += piece;
      piece.clear();
      if (stage.buffered.size() > buffer_limit_) {
        co_return plugins::Verdict::Respond(request_ ? 413 : 502, "body too large to buffer\n");
      }
      if (!last) co_return plugins::Verdict::Continue();
      piece = std::move(stage.buffered);
    }
    plugins::HttpPlugin* plugin = stage.plugin;
    plugins::Verdict v = co_await PluginStep(plugin->name(), [&, plugin] {
      return request_ ? plugin->OnRequestBody(ctx, piece, last)
                      : plugin->OnResponseBody(ctx, piece, last);
    });
    if (v.kind == plugins::Verdict::Kind::kRespond) co_return v;
  }
  co_return plugins::Verdict::Continue();
}

}  // namespace meshplug::agent::proxy
