#!/usr/bin/env bash
# Build the air-gapped base image (no container registry needed) from Debian packages.
#
#   debootstrap --variant=minbase bookworm + python3, python3-venv, ca-certificates
#   + the host's CA bundle (pip/uv inside `docker build` verify PyPI's certificate with it)
#   -> `docker import` as $BASE_TAG
#
# The image is reused when it already exists (CI re-runs stay fast); FORCE=1 rebuilds it.
# Debian bookworm's python3 is 3.11, which the package supports (requires-python >=3.11).
set -euo pipefail

BASE_TAG=${BASE_TAG:-llm-gateway-base:bookworm}
SUITE=${SUITE:-bookworm}
FORCE=${FORCE:-0}

if [[ "$FORCE" != 1 ]] && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  echo "offline base: reusing $BASE_TAG"
  exit 0
fi

SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "offline base: installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq debootstrap >/dev/null
fi

# The mirror apt already uses on this machine (deb822 .sources or one-line .list format).
mirror_from_apt() {
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
  local f
  for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue
    # deb822: "URIs: http://deb.debian.org/debian" in a stanza whose suites include ours.
    awk -v suite="$SUITE" '
      /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = uri }
      /^$/ { uri = "" } END { if (found) print found }' "$f"
    # one-line: "deb [opts] http://mirror/debian bookworm main"
    awk -v suite="$SUITE" '$1 == "deb" {
      for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) == suite) print $i; break } }' "$f"
  done | head -n 1
}
MIRROR=${MIRROR:-$(mirror_from_apt)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[[ -f "$CA_BUNDLE" ]] || { echo "offline base: CA bundle $CA_BUNDLE not found" >&2; exit 1; }

ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/llm-gateway-rootfs.XXXXXX")
cleanup() { "${SUDO[@]}" rm -rf --one-file-system "$ROOTFS"; }
trap cleanup EXIT

echo "offline base: debootstrap $SUITE from $MIRROR into $ROOTFS"
started=$(date +%s)
"${SUDO[@]}" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
  tail -n 30 "$ROOTFS.log" >&2
  echo "offline base: debootstrap failed (full log: $ROOTFS.log)" >&2
  exit 1
}

# The host's bundle may hold a corporate/proxy CA that Debian's does not.
"${SUDO[@]}" cp "$CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
# Nothing in the image should talk to apt again: drop its lists and caches (tens of MB).
"${SUDO[@]}" rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/log/* "$ROOTFS"/usr/share/doc/* \
  "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*

"${SUDO[@]}" tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/usr/bin/python3"]' \
  - "$BASE_TAG" >/dev/null
rm -f "$ROOTFS.log"
echo "offline base: built $BASE_TAG in $(( $(date +%s) - started ))s," \
  "$(docker image inspect "$BASE_TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
