#!/usr/bin/env bash
# test/debian-rootfs.sh OUT.tar: a Debian bookworm minbase root filesystem as a
# tarball, made with debootstrap from the machine's Debian mirror. Cached:
# an existing OUT.tar is kept. Needs root (debootstrap) and the debootstrap
# package.
set -euo pipefail
out=${1:?usage: test/debian-rootfs.sh OUT.tar}
[[ -s "$out" ]] && exit 0
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "debian-rootfs: debootstrap bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/log" 2>&1 || {
	tail -20 "$work/log" >&2
	exit 1
}
# The apt lists and caches are not part of an image.
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin
tar -C "$work/rootfs" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
