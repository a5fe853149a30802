"""relay_fuzz_test: one fuzz target (tools/fuzz/fuzz.h), built and run two ways.

    relay_fuzz_test(
        name = "arc_fuzz_test",
        srcs = ["fuzz/arc_fuzz.cc"],
        deps = [":arc"],
        corpus = glob(["fuzz/arc_corpus/*"]),
        dictionary = "fuzz/arc.dict", # optional, libFuzzer's format; the GCC mutator uses it too
        max_len = 8192,               # longest mutated input
    )

makes
    NAME_target   the target's cc_library (alwayslink);
    NAME          a cc_test with GCC: corpus replay, bounded mutations, work-per-byte check
                  (tools/fuzz/replay_driver.cc), every input within the target's heap bounds;
    NAME_clang    an sh_test that runs the target built with clang and libFuzzer
                  (-fsanitize=fuzzer,address,undefined) over the corpus for a few seconds;
    NAME_fuzzer   that libFuzzer binary, for long runs (tools/fuzz/run_long.sh).

The clang build compiles every C++ source of the target's cc_library dependencies with clang (an
aspect over `deps`, one action per source, shared between targets) and links them with the
system libraries their linkopts name.
"""

load("@rules_cc//cc:defs.bzl", "cc_library", "cc_test")

_ClangFuzzInfo = provider(
    doc = "Sources of a cc_library closure compiled with clang for libFuzzer.",
    fields = {
        "objects": "depset of object files",
        "headers": "depset of the headers the closure's sources may include",
        "includes": "depset of include directories (cc_library includes)",
        "defines": "depset of preprocessor defines (cc_library defines)",
        "linkopts": "depset of link options (cc_library linkopts)",
    },
)

_SOURCE_EXTENSIONS = ["cc", "cpp", "c"]

def _clang_fuzz_aspect_impl(target, ctx):
    deps = [d[_ClangFuzzInfo] for d in getattr(ctx.rule.attr, "deps", []) if _ClangFuzzInfo in d]
    srcs = getattr(ctx.rule.files, "srcs", [])
    own_headers = getattr(ctx.rule.files, "hdrs", []) + getattr(ctx.rule.files, "textual_hdrs", [])
    own_headers += [f for f in srcs if f.extension not in _SOURCE_EXTENSIONS]
    headers = depset(own_headers, transitive = [d.headers for d in deps])
    own_includes = []
    for inc in getattr(ctx.rule.attr, "includes", []):
        parts = [p for p in [target.label.workspace_root, target.label.package, inc] if p]
        own_includes.append("/".join(parts))

    # A generated header (a genrule's output) is included by its path under the output root.
    for f in own_headers:
        if not f.is_source and f.root.path not in own_includes:
            own_includes.append(f.root.path)
    includes = depset(own_includes, transitive = [d.includes for d in deps])
    defines = depset(getattr(ctx.rule.attr, "defines", []), transitive = [d.defines for d in deps])
    linkopts = depset(
        getattr(ctx.rule.attr, "linkopts", []),
        transitive = [d.linkopts for d in deps],
        order = "topological",
    )
    objects = []
    for src in srcs:
        if src.extension not in _SOURCE_EXTENSIONS:
            continue
        obj = ctx.actions.declare_file("_clang_fuzz/%s/%s.o" % (ctx.label.name, src.short_path))
        args = ctx.actions.args()
        args.add_all(["compile", obj, src])
        args.add_all(includes, format_each = "-I%s")
        args.add_all(defines, format_each = "-D%s")
        ctx.actions.run(
            executable = ctx.executable._clang_sh,
            arguments = [args],
            inputs = depset([src], transitive = [headers]),
            outputs = [obj],
            mnemonic = "ClangFuzzCompile",
            progress_message = "Compiling %s with clang for libFuzzer" % src.short_path,
            use_default_shell_env = True,
        )
        objects.append(obj)
    return [_ClangFuzzInfo(
        objects = depset(objects, transitive = [d.objects for d in deps]),
        headers = headers,
        includes = includes,
        defines = defines,
        linkopts = linkopts,
    )]

_clang_fuzz_aspect = aspect(
    implementation = _clang_fuzz_aspect_impl,
    attr_aspects = ["deps"],
    attrs = {
        "_clang_sh": attr.label(
            default = "//tools/fuzz:clang.sh",
            executable = True,
            cfg = "host",
            allow_single_file = True,
        ),
    },
)

def _clang_fuzzer_impl(ctx):
    infos = [d[_ClangFuzzInfo] for d in ctx.attr.deps]
    objects = depset(transitive = [i.objects for i in infos])
    linkopts = depset(transitive = [i.linkopts for i in infos], order = "topological")
    out = ctx.actions.declare_file(ctx.label.name)
    args = ctx.actions.args()
    args.add_all(["link", out])
    args.add_all(objects)
    args.add("--")
    args.add_all(linkopts)
    ctx.actions.run(
        executable = ctx.executable._clang_sh,
        arguments = [args],
        inputs = objects,
        outputs = [out],
        mnemonic = "ClangFuzzLink",
        progress_message = "Linking %s with libFuzzer" % out.short_path,
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([out]), executable = out)]

_clang_fuzzer = rule(
    implementation = _clang_fuzzer_impl,
    attrs = {
        "deps": attr.label_list(aspects = [_clang_fuzz_aspect]),
        "_clang_sh": attr.label(
            default = "//tools/fuzz:clang.sh",
            executable = True,
            cfg = "host",
            allow_single_file = True,
        ),
    },
    executable = True,
)

def relay_fuzz_test(
        name,
        srcs,
        deps,
        corpus,
        dictionary = None,
        max_len = 4096,
        mutation_seconds = 5,
        size = "medium",
        data = [],
        tags = []):
    """A fuzz target with its GCC replay test and its libFuzzer test. See the file's doc."""
    target = name + "_target"
    cc_library(
        name = target,
        testonly = True,
        srcs = srcs,
        deps = deps + ["//tools/fuzz"],
        alwayslink = True,
    )
    native.filegroup(name = name + "_corpus", testonly = True, srcs = corpus)
    dict_data = [dictionary] if dictionary else []
    cc_test(
        name = name,
        size = size,
        args = [
            "--max_len=%d" % max_len,
            "--seconds=%d" % mutation_seconds,
        ] + (["--dict=$(rootpath %s)" % dictionary] if dictionary else []) + [
            "$(rootpaths :%s_corpus)" % name,
        ],
        data = [":%s_corpus" % name] + dict_data + data,
        tags = tags,
        deps = [target, "//tools/fuzz:replay_driver"],
    )
    _clang_fuzzer(
        name = name + "_fuzzer",
        testonly = True,
        deps = [target, "//tools/fuzz:libfuzzer_entry"],
        tags = ["manual"] if "manual" in tags else [],
    )
    native.sh_test(
        name = name + "_clang",
        size = size,
        srcs = ["//tools/fuzz:libfuzzer_test.sh"],
        args = [
            "$(rootpath :%s_fuzzer)" % name,
            "$(rootpath %s)" % dictionary if dictionary else "-",
            "%d" % max_len,
            "$(rootpaths :%s_corpus)" % name,
        ],
        data = [":%s_fuzzer" % name, ":%s_corpus" % name] + dict_data + data,
        tags = tags,
    )
