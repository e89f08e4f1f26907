#!/usr/bin/env bash
# Makes sure a Docker Engine answers, for the docker sandbox and the grading images. Run by `make install`;
# safe to run again. Starts `dockerd` in the background when none answers (these machines have no systemd).
# Exit 0: an engine answers. Exit 1: none can run here; the reason is printed (bwrap-only use still works).
set -uo pipefail
TIMEOUT="${DOCKERD_TIMEOUT:-60}"
LOG="${DOCKERD_LOG:-/var/log/cnn-harness-dockerd.log}"

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
cannot() { echo "docker: no engine can run here: $*" >&2; exit 1; }

command -v docker >/dev/null || cannot "the docker client is not installed (Debian package docker.io: make install)"
answers && exit 0
[ -n "${DOCKER_HOST:-}" ] && cannot "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
command -v dockerd >/dev/null || cannot "dockerd is not installed (Debian package docker.io: make install)"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  cannot "dockerd needs root, and sudo without a password is not available; ask an administrator to start it"
fi

if pgrep -x dockerd >/dev/null; then
  echo "docker: a dockerd is running but does not answer yet; waiting up to ${TIMEOUT}s"
else
  echo "docker: starting dockerd in the background (log: $LOG)"
  $SUDO mkdir -p "$(dirname "$LOG")"
  $SUDO sh -c "setsid nohup dockerd >>'$LOG' 2>&1 </dev/null &" || cannot "dockerd could not be started"
fi
for _ in $(seq "$TIMEOUT"); do
  answers && { echo "docker: engine answers ($(docker version --format '{{.Server.Version}}'))"; exit 0; }
  if ! pgrep -x dockerd >/dev/null; then
    cannot "dockerd exited at start; the end of $LOG says why:
$($SUDO tail -n 15 "$LOG" 2>/dev/null)"
  fi
  sleep 1
done
cannot "dockerd did not answer within ${TIMEOUT}s; the end of $LOG:
$($SUDO tail -n 15 "$LOG" 2>/dev/null)"
