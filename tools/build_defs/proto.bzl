"""cc_grpc_library: C++ (and gRPC) code from .proto files with Debian's protoc.

Native proto_library/cc_proto_library would download @com_google_protobuf; this runs the
system protoc and grpc_cpp_plugin instead. Import paths are relative to the package that
calls the macro (proto/), so `import "envoy/config/core/v3/base.proto"` works from any
file in it, and generated headers are included the same way.
"""

def _strip(src):
    return src[:-len(".proto")]

def cc_grpc_library(name, srcs, deps = [], grpc = False, visibility = None):
    """Generates and compiles `srcs`.

    Args:
      name: the cc_library to create (with the services); `name`_messages has the messages only.
      srcs: .proto files in this package.
      deps: other cc_grpc_library targets whose .proto files `srcs` import.
      grpc: also generate gRPC service stubs.
      visibility: of the libraries and the filegroup of .proto files.
    """
    outs = []
    for src in srcs:
        outs += [_strip(src) + ".pb.h", _strip(src) + ".pb.cc"]
        if grpc:
            outs += [_strip(src) + ".grpc.pb.h", _strip(src) + ".grpc.pb.cc"]

    # Every .proto that protoc may need to read: ours and those of the deps.
    native.filegroup(
        name = name + "_protos",
        srcs = srcs + [d + "_protos" for d in deps],
        visibility = visibility,
    )

    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(RULEDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin "

    native.genrule(
        name = name + "_gen",
        srcs = srcs + [name + "_protos"],
        outs = outs,
        cmd = ("/usr/bin/protoc -I" + native.package_name() + " -I/usr/include " +
               "--cpp_out=$(RULEDIR) " + grpc_flags +
               " ".join(["$(location %s)" % s for s in srcs])),
        message = "protoc " + name,
    )

    # The messages alone: code that only encodes and decodes them (the agent) links no
    # gRPC library. `name` adds the service stubs and gRPC when `grpc` is set.
    native.cc_library(
        name = name + "_messages",
        srcs = [o for o in outs if o.endswith(".pb.cc") and not o.endswith(".grpc.pb.cc")],
        hdrs = [o for o in outs if o.endswith(".pb.h") and not o.endswith(".grpc.pb.h")],
        includes = ["."],
        # Generated code is not ours to keep -Wextra clean.
        copts = ["-Wno-unused-parameter"],
        deps = [d + "_messages" for d in deps] + ["//third_party:protobuf"],
        visibility = visibility,
    )
    if grpc:
        native.cc_library(
            name = name,
            srcs = [o for o in outs if o.endswith(".grpc.pb.cc")],
            hdrs = [o for o in outs if o.endswith(".grpc.pb.h")],
            includes = ["."],
            copts = ["-Wno-unused-parameter"],
            deps = [name + "_messages", "//third_party:grpc"],
            visibility = visibility,
        )
    else:
        native.alias(name = name, actual = name + "_messages", visibility = visibility)
