#!/usr/bin/env bash
# Builds CPython 3.11.2 for wasm32-wasi (WASI preview 1) from Debian's copy of the
# upstream release tarball, with Debian bookworm's clang 14, lld and wasi-libc.
#
#   examples/python/build-cpython.sh [WORKDIR]     (default: ./cpython-wasi)
#
# Needs (apt): clang lld wasi-libc libclang-rt-dev-wasm32 make curl ca-certificates
#              gcc libc6-dev (for the build-machine Python; its own deps are optional)
# Leaves: WORKDIR/dist/python.wasm and WORKDIR/dist/lib/python3.11 (the stdlib to preopen).
# JOBS (default 2) sets make's parallelism.
set -euo pipefail

VERSION=3.11.2
TARBALL=python3.11_${VERSION}.orig.tar.gz
# Debian's orig tarball is the upstream Python-3.11.2.tgz byte for byte (python.org
# publishes the same SHA-256 for it).
SHA256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849
URLS=(
  "https://deb.debian.org/debian/pool/main/p/python3.11/${TARBALL}"
  "https://snapshot.debian.org/archive/debian/20250520T000000Z/pool/main/p/python3.11/${TARBALL}"
)
JOBS=${JOBS:-2}
WORK=$(mkdir -p "${1:-cpython-wasi}" && cd "${1:-cpython-wasi}" && pwd)
SRC=$WORK/Python-$VERSION
NATIVE=$WORK/build-native
CROSS=$WORK/build-wasi
SYSROOT=$WORK/wasi-sysroot
DIST=$WORK/dist
cd "$WORK"

# 1. Source, verified by hash.
if ! echo "$SHA256  $TARBALL" | sha256sum -c --quiet - 2>/dev/null; then
  rm -f "$TARBALL"
  for url in "${URLS[@]}"; do
    curl -fsSL -o "$TARBALL.part" "$url" && mv "$TARBALL.part" "$TARBALL" && break
  done
  echo "$SHA256  $TARBALL" | sha256sum -c --quiet -
fi
[ -d "$SRC" ] || tar xzf "$TARBALL"

# 2. A private sysroot holding only wasi-libc. `--sysroot=/usr` would also put /usr/include
#    (the build machine's zlib.h, ffi.h, ...) on the wasm include path.
mkdir -p "$SYSROOT/include" "$SYSROOT/lib"
ln -sfn /usr/include/wasm32-wasi "$SYSROOT/include/wasm32-wasi"
ln -sfn /usr/lib/wasm32-wasi "$SYSROOT/lib/wasm32-wasi"

# 3. Python for the build machine, from the same source (it freezes the wasm build's
#    startup modules, so its bytecode must match).
if [ ! -x "$NATIVE/python" ]; then
  mkdir -p "$NATIVE"
  (cd "$NATIVE" && "$SRC/configure" -q && make -j"$JOBS")
fi

# 4. Cross build. configure knows WASI (ac_sys_system=WASI: emulated signals, getpid and
#    process clocks, no threads, no dynamic loading, built-in modules only).
mkdir -p "$CROSS"
cd "$CROSS"
CC="clang --target=wasm32-wasi --sysroot=$SYSROOT"
if [ ! -f Makefile ]; then
  CONFIG_SITE="$SRC/Tools/wasm/config.site-wasm32-wasi" \
    CC="$CC" CPP="$CC -E" AR=llvm-ar RANLIB=llvm-ranlib \
    PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$SYSROOT/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$SYSROOT" \
    "$SRC/configure" -C \
    --host=wasm32-unknown-wasi --build="$("$SRC/config.guess")" \
    --with-build-python="$NATIVE/python" \
    --prefix=/usr/local --disable-ipv6 --disable-test-modules
fi
make -j"$JOBS"

# 5. The interpreter and the pure-Python stdlib, laid out as the interpreter looks for it:
#    prefix /usr/local -> /usr/local/lib/python3.11 inside the guest.
rm -rf "$DIST" && mkdir -p "$DIST/lib"
cp python.wasm "$DIST/python.wasm"
cp -r "$SRC/Lib" "$DIST/lib/python3.11"
cp "$(cat pybuilddir.txt)"/_sysconfigdata_*.py "$DIST/lib/python3.11/"
mkdir -p "$DIST/lib/python3.11/lib-dynload"  # getpath looks for it to find exec_prefix
find "$DIST/lib" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$DIST/lib/python3.11/test" "$DIST/lib/python3.11/idlelib" "$DIST/lib/python3.11/tkinter" \
  "$DIST/lib/python3.11/turtledemo" "$DIST/lib/python3.11/ensurepip"
sha256sum "$DIST/python.wasm"
