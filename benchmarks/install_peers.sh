#!/bin/sh
# Install the benchmark peers (Debian packages and PyPI only).
#   restic, borg, git-annex, b3sum, zstd and GNU time from Debian;
#   DVC from PyPI in its own virtualenv, /opt/peers/dvc (override with PEERS_DIR).
# Run as root (or with sudo). Idempotent: re-running upgrades nothing it need not.
set -eu
PEERS_DIR="${PEERS_DIR:-/opt/peers}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
    restic borgbackup git-annex b3sum zstd time git
if [ ! -x "$PEERS_DIR/dvc/bin/dvc" ]; then
    $SUDO mkdir -p "$PEERS_DIR"
    $SUDO python3 -m venv "$PEERS_DIR/dvc"
    $SUDO "$PEERS_DIR/dvc/bin/pip" install --quiet dvc
fi
"$PEERS_DIR/dvc/bin/dvc" --version
restic version
borg --version
git annex version --raw
b3sum --version
zstd --version
