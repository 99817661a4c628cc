#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs examples/ against
# the installed library four ways: with pkg-config and with CMake's find_package,
# each shared and static. Neither the pkg-config file nor the CMake package may
# ask for OpenCL (Debian's oneDNN package file would; see cmake/FindDNNL.cmake).
# Then the installed Python package (when NumPy is there): installed where
# /usr/bin/python3 looks under the default prefix, it loads the installed library.
#   check_install.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
source_dir=$1 build_dir=$2 work=$3
prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name attn.pc -print -quit)")/..
libdir=$(cd "$libdir" && pwd)

"$prefix/bin/attn" --version
if cat "$libdir/pkgconfig/attn.pc" "$libdir"/cmake/attn/*.cmake | grep -v '^\s*#' |
   grep -i -e opencl -e 'dnnl CONFIG'; then
  echo "check_install: the installed attn.pc or CMake package asks for OpenCL" >&2
  exit 1
fi

echo "-- pkg-config"
PKG_CONFIG_PATH=$libdir/pkgconfig ${CC:-cc} -std=c11 -Wall -Werror \
  "$source_dir/examples/attention.c" \
  $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs attn) -o "$work/attention_pc"
LD_LIBRARY_PATH=$libdir "$work/attention_pc" | tee "$work/pc.txt"
grep -q "query 1: weights" "$work/pc.txt"

echo "-- pkg-config --static"
# libattn.a by name (-l:), its private dependencies from Libs.private and Requires.private.
static_libs=$(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --static --libs attn)
${CC:-cc} -std=c11 -Wall -Werror "$source_dir/examples/attention.c" \
  $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags attn) \
  ${static_libs/-lattn/-l:libattn.a} -o "$work/attention_pc_static"
if ldd "$work/attention_pc_static" | grep -q libattn; then
  echo "check_install: attention_pc_static loads the shared libattn" >&2
  exit 1
fi
"$work/attention_pc_static" >"$work/pc_static.txt"
cmp "$work/pc.txt" "$work/pc_static.txt"

echo "-- find_package"
cmake -S "$source_dir/examples" -B "$work/examples" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/examples" >/dev/null
"$work/examples/attention" | tee "$work/shared.txt"
"$work/examples/attention_static" >"$work/static.txt"
cmp "$work/shared.txt" "$work/pc.txt"
cmp "$work/shared.txt" "$work/static.txt"
echo "installed library works through pkg-config and find_package, shared and static"

echo "-- Python"
if [ ! -x /usr/bin/python3 ]; then
  echo "no /usr/bin/python3, so no Python package to check (the test command installs it)"
  exit 0
fi
package=$(find "$prefix" -path '*-packages/attn/__init__.py' -print -quit)
if [ -z "$package" ]; then
  echo "check_install: the Python package was not installed" >&2
  exit 1
fi
site=$(dirname "$(dirname "$package")")
relative=${site#"$prefix"/}
if ! /usr/bin/python3 -c "import sys; sys.exit('/usr/local/$relative' not in sys.path)"; then
  echo "check_install: the package's folder /usr/local/$relative is not on /usr/bin/python3's path" >&2
  exit 1
fi
if /usr/bin/python3 -c "import numpy" 2>/dev/null; then
  (cd "$work" && PYTHONPATH=$site /usr/bin/python3 -c "
import os, sys, numpy as np, attn, attn._lib
library = os.path.realpath(attn._lib._find())
assert library.startswith(os.path.realpath(sys.argv[1])), library
q = np.ones((1, 2, 3, 4), np.float32)
assert np.allclose(attn.scaled_dot_product_attention(q, q, q), 1.0)
print('the installed package', attn.__version__, 'runs', library)" "$prefix")
else
  echo "the installed package is not run: no NumPy (the test command installs it)"
fi
