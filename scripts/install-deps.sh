#!/bin/sh
# Installs what building, booting and testing need on a Debian 12 machine:
# QEMU, e2fsprogs (e2fsck/debugfs for the disk checks), cpio and zstd (archive
# checks), graphviz (the DOT output is checked with dot), busybox-static (the
# image's shell, run on the host by component tests), and fresh package lists
# so 'apt-get download' finds the locked versions. Idempotent; needs root (or sudo) only when something is missing.
set -eu

need="qemu-system-x86 e2fsprogs cpio zstd util-linux ca-certificates graphviz busybox-static"
missing=""
for p in $need; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi

# Package lists older than a day (or none at all) are refreshed: the lock
# pins exact versions, which apt can only download if its lists know them.
lists=/var/lib/apt/lists
if [ -n "$missing" ] || [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
	echo "install-deps: apt-get update"
	$sudo apt-get update -qq
fi
if [ -n "$missing" ]; then
	echo "install-deps: apt-get install$missing"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
