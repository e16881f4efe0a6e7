#!/bin/sh
# Keeps the farm's state on remove; purge deletes it.
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "purge" ]; then
  rm -rf /var/lib/montage-coordinator /etc/montage
  userdel montage >/dev/null 2>&1 || true
fi
