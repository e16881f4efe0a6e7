#!/bin/sh
# Stops the service so it hands its work back before the binary goes.
set -e
if [ -d /run/systemd/system ]; then
  systemctl disable --now montage-agent >/dev/null 2>&1 || true
fi
