"""embed_text: a text file as a C++ raw string literal, for `#include` inside an initializer.

    embed_text(name = "shipped_shaping_inc", src = "shipped_shaping.toml")
    # C++: constexpr char kText[] =
    #        #include "relay/server/config/shipped_shaping.inc"
    #        ;

The file must not contain the delimiter `)shipped"`.
"""

def embed_text(name, src):
    native.genrule(
        name = name,
        srcs = [src],
        outs = [src.rsplit(".", 1)[0] + ".inc"],
        cmd = "(echo 'R\"shipped('; cat $<; echo ')shipped\"') > $@",
    )
