#!/usr/bin/env bash
# Installs the real tools the tests use as independent checks and peers:
# gztool (zran index oracle), pigz (multi-member gzip), GNU tar, skopeo and
# Debian's docker-registry (the registry the integration tests start on 127.0.0.1),
# fusermount3 (fuse3: `soci mount`'s auto-unmount and its FUSE tests), zstd (the
# mount fixture's zstd layer), runc (`soci run`'s containers).
set -euo pipefail
need=()
for pair in gztool:gztool pigz:pigz tar:tar skopeo:skopeo docker-registry:docker-registry openssl:openssl python3:python3 fusermount3:fuse3 zstd:zstd runc:runc; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null 2>&1 || true
echo "test tools present: gztool pigz tar skopeo docker-registry openssl python3 fusermount3 zstd runc"
