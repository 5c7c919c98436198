#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries a binary loads (one per line,
# sorted), so that the runtime image installs exactly what the build stage linked against.
# Usage: runtime-packages.sh BINARY...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: runtime-packages.sh BINARY..." >&2; exit 2; }
owner() {  # the package owning a library path, trying the /usr-merged spellings too
  local path=$1 real candidate pkg
  real=$(readlink -f "$path")
  for candidate in "$path" "$real" "/usr$path" "/usr$real" "${path#/usr}" "${real#/usr}"; do
    if pkg=$(dpkg-query -S "$candidate" 2>/dev/null | head -n 1) && [ -n "$pkg" ]; then
      pkg=${pkg%%: /*}   # "libc6:amd64: /lib/..." or "a, b: /path"
      pkg=${pkg%%,*}
      echo "${pkg%%:*}"
      return 0
    fi
  done
  echo "runtime-packages.sh: no package owns $path" >&2
  return 1
}
for binary in "$@"; do
  [ -x "$binary" ] || { echo "runtime-packages.sh: $binary is not an executable" >&2; exit 1; }
  missing=$(ldd "$binary" | awk '/not found/ { print $1 }')
  [ -z "$missing" ] || { echo "runtime-packages.sh: $binary needs libraries that are not installed: $missing" >&2; exit 1; }
  ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    owner "$lib"
  done
done | sort -u
