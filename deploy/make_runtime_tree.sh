#!/usr/bin/env bash
# Assembles the runtime image's file tree: the kiln binary (stripped) and exactly the shared
# libraries `ldd` says it needs (and the dynamic loader), each at its own path under OUT.
# docker/Dockerfile copies this tree into an empty image; deploy/test_runtime_tree.sh proves
# it starts with nothing else (a chroot into OUT).
#
# Usage: deploy/make_runtime_tree.sh KILN_BINARY OUT_DIR
set -euo pipefail
kiln=${1:?usage: make_runtime_tree.sh KILN_BINARY OUT_DIR}
out=${2:?usage: make_runtime_tree.sh KILN_BINARY OUT_DIR}
rm -rf "$out"
mkdir -p "$out/usr/bin" "$out/tmp" "$out/models" "$out/etc"
chmod 1777 "$out/tmp"
objcopy --strip-debug "$kiln" "$out/usr/bin/kiln"
# Every library ldd resolves ("name => /path (addr)") and the loader ("/lib64/ld-... (addr)").
ldd "$kiln" | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | sort -u | while read -r lib; do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done
if ldd "$kiln" | grep -q "not found"; then
  echo "make_runtime_tree: missing libraries:" >&2
  ldd "$kiln" | grep "not found" >&2
  exit 1
fi
# A non-root user for the image.
echo "kiln:x:65532:65532:kiln:/tmp:/usr/sbin/nologin" >"$out/etc/passwd"
echo "kiln:x:65532:" >"$out/etc/group"
echo "make_runtime_tree: $(find "$out" -type f | wc -l) files, $(du -sh "$out" | cut -f1) in $out"
