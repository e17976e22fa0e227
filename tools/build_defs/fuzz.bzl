"""fuzz_target: a libFuzzer target and the test that replays its checked-in inputs.

`bazel build --config=fuzz //fuzz:NAME` (tools/fuzz.sh) builds the fuzzer with clang-14,
libFuzzer and ASan/UBSan. The normal build compiles the same LLVMFuzzerTestOneInput with
gcc into NAME_replay_test, which runs every file of fuzz/corpus/NAME (seeds and what
fuzzing added) and fuzz/regressions/NAME (inputs that once failed) as part of the suite.
"""

def fuzz_target(name, srcs, deps = [], data = []):
    inputs = native.glob([
        "corpus/%s/**" % name,
        "regressions/%s/**" % name,
    ])
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps,
        data = data,
        linkopts = select({
            "//fuzz:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        # Only under --config=fuzz: without libFuzzer it has no main.
        tags = ["manual"],
        testonly = True,
    )
    native.cc_test(
        name = name + "_replay_test",
        srcs = srcs,
        deps = deps + ["//fuzz:replay_main"],
        data = data + inputs,
        args = [
            "fuzz/corpus/" + name,
            "fuzz/regressions/" + name,
        ],
    )
