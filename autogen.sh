#!/bin/sh
# Regenerates configure, Makefile.in and the build-aux/ helpers
# (tap-driver.sh, ltmain.sh, ...). Needs autoconf, automake, libtool and
# pkg-config (scripts/deps installs them on Debian).
set -e
srcdir=$(dirname "$0")
cd "$srcdir"
mkdir -p m4 build-aux
autoreconf -fi "$@"
echo "Now run ./configure (see ./configure --help), then make."
