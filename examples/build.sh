#!/bin/sh
# Builds the example programs to examples/build/*.wasm with Debian's toolchains:
#   clang --target=wasm32-wasi (wasi-libc, lld, libclang-rt-dev-wasm32) and /usr/bin/rustc
#   (the distribution's Rust, which has the wasm32-wasi standard library).
# Usage: examples/build.sh [c|rust|all]   (default all). CC and RUSTC override the compilers.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/build"
mkdir -p "$out"
CC=${CC:-clang}
RUSTC=${RUSTC:-/usr/bin/rustc}
what=${1:-all}
cflags="--target=wasm32-wasi --sysroot=/usr -O2 -Wall -s"

if [ "$what" = all ] || [ "$what" = c ]; then
    $CC $cflags -o "$out/conformance-c.wasm" "$here/c/conformance.c"
    $CC $cflags -o "$out/readbench.wasm" "$here/c/readbench.c"
    $CC $cflags -o "$out/copytree.wasm" "$here/c/copytree.c"
    # zlib's own minigzip, unmodified (examples/third_party/zlib, zlib licence).
    z="$here/third_party/zlib"
    $CC $cflags -w -DZ_HAVE_UNISTD_H -I"$z" -o "$out/minigzip.wasm" \
        "$z"/adler32.c "$z"/compress.c "$z"/crc32.c "$z"/deflate.c "$z"/gzclose.c \
        "$z"/gzlib.c "$z"/gzread.c "$z"/gzwrite.c "$z"/infback.c "$z"/inffast.c \
        "$z"/inflate.c "$z"/inftrees.c "$z"/trees.c "$z"/uncompr.c "$z"/zutil.c \
        "$z"/minigzip.c
    # gztree: gzip a directory tree into another with the same zlib (examples/c/gztree.c).
    $CC $cflags -w -DZ_HAVE_UNISTD_H -I"$z" -o "$out/gztree.wasm" \
        "$z"/adler32.c "$z"/compress.c "$z"/crc32.c "$z"/deflate.c "$z"/gzclose.c \
        "$z"/gzlib.c "$z"/gzread.c "$z"/gzwrite.c "$z"/infback.c "$z"/inffast.c \
        "$z"/inflate.c "$z"/inftrees.c "$z"/trees.c "$z"/uncompr.c "$z"/zutil.c \
        "$here/c/gztree.c"
fi
if [ "$what" = all ] || [ "$what" = rust ]; then
    $RUSTC --target wasm32-wasi --edition 2021 -O -C strip=symbols \
        -o "$out/conformance-rust.wasm" "$here/rust/conformance.rs"
fi
