"""The libraries the agent links into itself instead of mapping them as shared ones.

Each shared library costs every process that maps it its own symbol and relocation tables
and some pages of data: Abseil's 41 made 1.4 MB of an agent's peak RSS
(docs/benchmarks.md §4.2, 2026-12-07), and a static link takes only the code used. The
price is that a Debian fix to one of these reaches agents only when they are rebuilt. So
only these: their input is the control plane's messages and the agent's own files
(Abseil's string helpers also see bytes from clients). OpenSSL, nghttp2, Lua and RE2,
which parse or match what peers and clients send, stay shared. :absl and :absl_flags in
BUILD.bazel link the lists below; the rest are what those libraries need.

How it works with Bazel 4: a cc_binary's own linkopts come before its deps', so these
archives resolve every symbol first and the deps' shared -l flags then name unused
libraries, which --as-needed drops. --as-needed stays on for the rest of the link, so a
library linked only for its side effects must say so itself (see :jemalloc).
"""

# :absl's and :absl_flags' libraries (BUILD.bazel), linked shared everywhere but the agent.
ABSL_LINKOPTS = [
    "-labsl_strings",
    "-labsl_str_format_internal",
    "-labsl_synchronization",
    "-labsl_time",
    "-labsl_hash",
    "-labsl_raw_hash_set",
    "-labsl_status",
    "-labsl_statusor",
    "-labsl_base",
]

ABSL_FLAGS_LINKOPTS = [
    "-labsl_flags_parse",
    "-labsl_flags_usage",
    "-labsl_flags_usage_internal",
    "-labsl_flags_internal",
    "-labsl_flags_marshalling",
    "-labsl_flags_reflection",
    "-labsl_flags_config",
    "-labsl_flags_program_name",
    "-labsl_flags_private_handle_accessor",
    "-labsl_flags_commandlineflag",
    "-labsl_flags_commandlineflag_internal",
]

AGENT_STATIC_LINKOPTS = [
    "-Wl,--as-needed",
    "-Wl,--push-state,-Bstatic",
    "-Wl,--start-group",
    "-lprotobuf",
    # Protobuf's gzip streams, should they ever be used.
    "-lz",
    "-lyaml-cpp",
] + ABSL_FLAGS_LINKOPTS + ABSL_LINKOPTS + [
    # What Abseil's libraries above need.
    "-labsl_time_zone",
    "-labsl_civil_time",
    "-labsl_throw_delegate",
    "-labsl_raw_logging_internal",
    "-labsl_spinlock_wait",
    "-labsl_strings_internal",
    "-labsl_int128",
    "-labsl_graphcycles_internal",
    "-labsl_stacktrace",
    "-labsl_symbolize",
    "-labsl_malloc_internal",
    "-labsl_city",
    "-labsl_low_level_hash",
    "-labsl_cord",
    "-labsl_cord_internal",
    "-labsl_cordz_info",
    "-labsl_cordz_functions",
    "-labsl_cordz_handle",
    "-labsl_strerror",
    "-labsl_debugging_internal",
    "-labsl_demangle_internal",
    "-labsl_exponential_biased",
    "-labsl_bad_optional_access",
    "-labsl_bad_variant_access",
    "-Wl,--end-group",
    "-Wl,--pop-state",
]
