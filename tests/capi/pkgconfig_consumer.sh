#!/usr/bin/env bash
# An outside C program built against the installed tree through pkg-config alone, linked to
# libherald.so.0 and (second) statically to libherald_c.a + libherald.a.
#   pkgconfig_consumer.sh <herald build dir> <work dir> <C compiler> <extra static libs...>
set -euo pipefail
binary=$1 work=$2 cc=$3
shift 3
rm -rf "$work"
mkdir -p "$work"
cmake --install "$binary" --prefix "$work/prefix" >/dev/null
pc=$(dirname "$(find "$work/prefix" -name herald.pc | head -1)")
export PKG_CONFIG_PATH="$pc"
cflags=$(pkg-config --cflags herald)
libs=$(pkg-config --libs herald)
libdir=$(pkg-config --variable=libdir herald)
cat >"$work/consumer.c" <<'C'
#include <herald/herald.h>
#include <stdio.h>
int main(void) {
  herald_kernel* k = NULL;
  herald_handle h = 0;
  herald_sub* s = NULL;
  herald_notification n;
  if (herald_kernel_create(NULL, &k) != HERALD_OK) return 1;
  if (herald_register(k, NULL, &h) != HERALD_OK) return 2;
  if (herald_subscribe(k, h, NULL, &s) != HERALD_OK) return 3;
  if (herald_notify(k, h, 42, NULL) != HERALD_OK) return 4;
  if (herald_sub_try_recv(s, &n) != HERALD_OK || n.arg != 42 || n.seq != 1) return 5;
  herald_sub_destroy(s);
  herald_kernel_destroy(k);
  printf("consumer: abi %u, got %lld\n", (unsigned)herald_abi_version(), (long long)n.arg);
  return 0;
}
C
# shellcheck disable=SC2086 # flag lists
"$cc" -std=c11 -Wall -Werror -pedantic $cflags "$work/consumer.c" $libs -Wl,-rpath,"$libdir" \
  -o "$work/consumer-shared"
"$work/consumer-shared"
ldd "$work/consumer-shared" | grep 'libherald.so.0' >/dev/null || { echo "not linked to libherald.so.0"; exit 1; }
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Werror -pedantic $cflags "$work/consumer.c" "$libdir/libherald_c.a" \
  "$libdir/libherald.a" -lstdc++ -lpthread "$@" -o "$work/consumer-static"
"$work/consumer-static"
