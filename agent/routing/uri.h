// Request-target normalization shared by the agent (before routing and forwarding) and
// MeshView::Route (for targets that a plugin rewrote), so that the path a route matches is
// the path the upstream sees.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace meshplug::agent::routing {

// An origin-form target ("/path?query") with its path normalized as RFC 3986 §6.2.2 says:
// percent-encoded unreserved characters decoded ("%2e" → "."), other percent-encodings
// upper-cased, repeated slashes merged ("//get" → "/get", as Envoy's merge_slashes), then
// dot segments removed (§5.2.4: "/a/./b/../c" → "/a/c"). The query is kept as it is. nullopt when the target cannot be normalized safely: it does not start
// with '/', has a malformed percent-encoding, an encoded '/' or '\' (%2F, %5C) or NUL
// (%00), a raw '\', or a '#'. `target` itself when it is normalized already (no copy: every
// request comes here twice), else the normalized copy in `storage`, which `target` must
// not view.
std::optional<std::string_view> NormalizeOriginForm(std::string_view target, std::string& storage);

// A Host value ("Web.Shop.:8080") as routing compares it: lower case, without the trailing
// dot of a fully qualified name ("web.shop:8080"); the port is kept. `host` itself when it
// is so already (no copy: every request comes here), else the normalized copy in `storage`.
std::string_view NormalizeHost(std::string_view host, std::string& storage);

}  // namespace meshplug::agent::routing
