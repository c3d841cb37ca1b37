#!/usr/bin/env bash
# Fetches the Debian kernels the bootloader tests boot, into a cache outside
# the repository, and prints nothing on success:
#   CACHE/amd64/vmlinuz  from linux-image-cloud-amd64
#   CACHE/arm64/vmlinuz  from linux-image-arm64
# Usage: scripts/fetch-test-kernels.sh CACHE
# The arm64 package is found through a private apt state under CACHE (the
# system's Debian sources, arm64 lists), so the host's dpkg architectures and
# apt lists stay as they are. Idempotent: kernels already there are kept.
set -euo pipefail
cache=${1:?usage: $0 CACHE}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# extract DEB DEST: the kernel image of a linux-image package.
extract() {
	local deb=$1 dest=$2 tree
	tree=$(mktemp -d "$cache/.tree.XXXXXX")
	dpkg-deb -x "$deb" "$tree"
	local vmlinuz
	vmlinuz=$(find "$tree/boot" -name 'vmlinuz-*' | head -n1)
	[ -n "$vmlinuz" ] || { echo "fetch-test-kernels: no /boot/vmlinuz-* in $deb" >&2; exit 1; }
	cp "$vmlinuz" "$dest.tmp" && mv "$dest.tmp" "$dest"
	rm -rf "$tree"
}

# fetch ARCH META [APT-OPTIONS...]: download the kernel META depends on.
fetch() {
	local arch=$1 meta=$2
	shift 2
	[ -s "$cache/$arch/vmlinuz" ] && return 0
	mkdir -p "$cache/$arch"
	local pkg
	pkg=$(apt-cache "$@" depends "$meta:$arch" | awk '/Depends: linux-image-/ {print $2; exit}')
	[ -n "$pkg" ] || { echo "fetch-test-kernels: apt knows no $meta for $arch (apt-get update?)" >&2; exit 1; }
	pkg=${pkg%%:*}
	(cd "$cache/$arch" && rm -f ./*.deb && apt-get "$@" download -q "$pkg:$arch" >/dev/null 2>&1) ||
		{ echo "fetch-test-kernels: apt-get download $pkg:$arch failed" >&2; exit 1; }
	extract "$(ls "$cache/$arch"/*.deb | head -n1)" "$cache/$arch/vmlinuz"
	rm -f "$cache/$arch"/*.deb
}

host=$(dpkg --print-architecture)
[ "$host" = amd64 ] || { echo "fetch-test-kernels: runs on amd64 hosts, this is $host" >&2; exit 1; }

if [ ! -s "$cache/amd64/vmlinuz" ] && ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
	apt-get update -qq >/dev/null
fi
fetch amd64 linux-image-cloud-amd64

# A private apt state that sees the same Debian sources for arm64.
apt="$cache/apt"
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/sources"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && grep -qE 'debian-archive-keyring|/debian(-security)?[[:space:]/]' "$f" && cp "$f" "$apt/sources/"
done
opts=(-o APT::Architecture=arm64 -o "APT::Architectures::=arm64"
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o "Dir::Cache::archives=$apt/archives"
	-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/sources"
	-o Dir::State::status=/dev/null)
if [ ! -s "$cache/arm64/vmlinuz" ]; then
	apt-get "${opts[@]}" update -qq >/dev/null 2>&1 ||
		{ echo "fetch-test-kernels: apt-get update for arm64 failed" >&2; exit 1; }
fi
fetch arm64 linux-image-arm64 "${opts[@]}"
