#!/usr/bin/env bash
# Builds CPython 3.11.2 for wasm32-wasi (WASI preview 1) from Debian's copy of the
# upstream release tarball, with Debian bookworm's clang 14, lld and wasi-libc.
#
#   examples/python/build-cpython.sh [WORKDIR]     (default: ./cpython-wasi)
#
# Needs (apt): clang lld llvm wasi-libc libclang-rt-dev-wasm32 make curl bzip2 ca-certificates
#              gcc libc6-dev (for the build-machine Python; its own deps are optional)
# Leaves: WORKDIR/dist/python.wasm and WORKDIR/dist/lib/python3.11 (the stdlib to preopen).
# JOBS (default 2) sets make's parallelism.
set -euo pipefail

VERSION=3.11.2
TARBALL=python3.11_${VERSION}.orig.tar.gz
# Debian's orig tarball is the upstream release tarball Python-3.11.2.tgz, not repacked
# (MD5 f6b5226ccba5ae1ca9376aaba0b0f673, to compare with python.org's release page).
SHA256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849
ZLIB_TARBALL=zlib_1.2.13.dfsg.orig.tar.bz2
ZLIB_SHA256=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1
DEBIAN=https://deb.debian.org/debian/pool/main
SNAPSHOT=https://snapshot.debian.org/archive/debian/20250520T000000Z/pool/main
JOBS=${JOBS:-2}
WORK=$(mkdir -p "${1:-cpython-wasi}" && cd "${1:-cpython-wasi}" && pwd)
SRC=$WORK/Python-$VERSION
NATIVE=$WORK/build-native
CROSS=$WORK/build-wasi
SYSROOT=$WORK/wasi-sysroot
DIST=$WORK/dist
cd "$WORK"

# 1. Sources, verified by hash: fetch FILE SHA256 PATH-UNDER-POOL
fetch() {
  if ! echo "$2  $1" | sha256sum -c --quiet - >/dev/null 2>&1; then
    rm -f "$1"
    for base in "$DEBIAN" "$SNAPSHOT"; do
      curl -fsSL -o "$1.part" "$base/$3/$1" && mv "$1.part" "$1" && break
    done
    echo "$2  $1" | sha256sum -c --quiet -
  fi
}
fetch "$TARBALL" "$SHA256" p/python3.11
fetch "$ZLIB_TARBALL" "$ZLIB_SHA256" z/zlib
[ -d "$SRC" ] || tar xzf "$TARBALL"
[ -d zlib-1.2.13.dfsg ] || tar xjf "$ZLIB_TARBALL"

# 2. A private sysroot holding only wasi-libc. `--sysroot=/usr` would also put /usr/include
#    (the build machine's zlib.h, ffi.h, ...) on the wasm include path.
mkdir -p "$SYSROOT/include" "$SYSROOT/lib"
ln -sfn /usr/include/wasm32-wasi "$SYSROOT/include/wasm32-wasi"
ln -sfn /usr/lib/wasm32-wasi "$SYSROOT/lib/wasm32-wasi"

# 3. zlib as a static wasm library (the zlib module, gzip, compressed zipimport).
ZLIB=$WORK/zlib-wasi
if [ ! -f "$ZLIB/lib/libz.a" ]; then
  mkdir -p "$ZLIB/include" "$ZLIB/lib" "$WORK/zlib-obj"
  for f in adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback inffast \
    inflate inftrees trees uncompr zutil; do
    clang --target=wasm32-wasi --sysroot="$SYSROOT" -O2 -DHAVE_HIDDEN -DHAVE_UNISTD_H -DHAVE_STDARG_H \
      -Werror=implicit-function-declaration \
      -c "$WORK/zlib-1.2.13.dfsg/$f.c" -o "$WORK/zlib-obj/$f.o"
  done
  llvm-ar rcs "$ZLIB/lib/libz.a" "$WORK"/zlib-obj/*.o
  cp "$WORK"/zlib-1.2.13.dfsg/{zlib.h,zconf.h} "$ZLIB/include/"
fi

# 4. Python for the build machine, from the same source (it freezes the wasm build's
#    startup modules, so its bytecode must match).
if [ ! -x "$NATIVE/python" ]; then
  mkdir -p "$NATIVE"
  (cd "$NATIVE" && "$SRC/configure" -q && make -j"$JOBS")
fi

# 5. Cross build. configure knows WASI (ac_sys_system=WASI: emulated signals, getpid and
#    process clocks, no threads, no dynamic loading, built-in modules only).
mkdir -p "$CROSS"
cd "$CROSS"
CC="clang --target=wasm32-wasi --sysroot=$SYSROOT"
# configure by a relative path: getpath.o keeps it (VPATH), so the bytes do not depend on
# WORKDIR.
if [ ! -f Makefile ]; then
  CONFIG_SITE="$SRC/Tools/wasm/config.site-wasm32-wasi" \
    CC="$CC" CPP="$CC -E" AR=llvm-ar RANLIB=llvm-ranlib \
    ZLIB_CFLAGS="-I$ZLIB/include" ZLIB_LIBS="-L$ZLIB/lib -lz" \
    PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$SYSROOT/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$SYSROOT" \
    "../Python-$VERSION/configure" -C \
    --host=wasm32-unknown-wasi --build="$("$SRC/config.guess")" \
    --with-build-python="$NATIVE/python" \
    --prefix=/usr/local --disable-ipv6 --disable-test-modules
fi
# Reproducible bytes: no build folder in __FILE__ strings, the release's date for
# sys.version's build date, and a fixed hash seed for the build Python that deep-freezes
# the startup modules (frozenset constants are emitted in iteration order).
export PYTHONHASHSEED=0
make -j"$JOBS" CFLAGS_NODIST="-ffile-prefix-map=$WORK=/build -Wno-builtin-macro-redefined \
  -D__DATE__='\"Feb  8 2023\"' -D__TIME__='\"00:00:00\"'"

# 6. The interpreter and the pure-Python stdlib, laid out as the interpreter looks for it:
#    prefix /usr/local -> /usr/local/lib/python3.11 inside the guest.
rm -rf "$DIST" && mkdir -p "$DIST/lib"
llvm-strip -o "$DIST/python.wasm" python.wasm  # drops the DWARF debug info: 20 MB -> 6.6 MB
cp -r "$SRC/Lib" "$DIST/lib/python3.11"
# sysconfig's build variables, with WORKDIR spelt /build (re-printed: pprint wraps by length)
"$NATIVE/python" - "$(cat pybuilddir.txt)/_sysconfigdata__wasi_wasm32-wasi.py" "$WORK" \
  >"$DIST/lib/python3.11/_sysconfigdata__wasi_wasm32-wasi.py" <<'PY'
import pprint, runpy, sys
build = runpy.run_path(sys.argv[1])["build_time_vars"]
fixed = {k: v.replace(sys.argv[2], "/build") if isinstance(v, str) else v for k, v in build.items()}
print("# system configuration generated and used by the sysconfig module")
print("build_time_vars = " + pprint.pformat(fixed))
PY
mkdir -p "$DIST/lib/python3.11/lib-dynload"  # getpath looks for it to find exec_prefix
find "$DIST/lib" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$DIST/lib/python3.11/test" "$DIST/lib/python3.11/idlelib" "$DIST/lib/python3.11/tkinter" \
  "$DIST/lib/python3.11/turtledemo" "$DIST/lib/python3.11/ensurepip"
rm -rf "$DIST/lib/python3.11/lib2to3/tests"
# Bytecode compiled ahead (the guest's stdlib is read-only): halves a script's import time.
# Their file names are the guest's (-s/-p), so the whole dist/ is the same for any WORKDIR.
"$NATIVE/python" -m compileall -q -o 0 --invalidation-mode unchecked-hash \
  -s "$DIST/lib/python3.11" -p /usr/local/lib/python3.11 "$DIST/lib/python3.11" >/dev/null
(cd "$DIST" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum |
  sed 's|-$|(all of dist/)|')
sha256sum "$DIST/python.wasm"
