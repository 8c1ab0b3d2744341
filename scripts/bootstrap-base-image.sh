#!/usr/bin/env bash
# Builds the base image locally for machines with no container registry:
# debootstrap a minimal Debian 12 with Python, then import it into podman.
# Usage: scripts/bootstrap-base-image.sh [IMAGE]   (default localhost/tts-base:bookworm)
# Sites with a registry set tts_image_base to a pulled image instead and skip this.
set -euo pipefail
IMAGE=${1:-localhost/tts-base:bookworm}
if podman image exists "$IMAGE"; then
  echo "$IMAGE already present"; exit 0
fi
ROOTFS=$(mktemp -d /var/tmp/tts-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap bookworm into $ROOTFS (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,curl \
  bookworm "$ROOTFS" >/var/log/tts-base-debootstrap.log 2>&1
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "imported $IMAGE"
