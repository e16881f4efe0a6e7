#!/bin/sh
# Keeps the data and the account on remove (the agent's id and credential
# live there); purge forgets them.
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "purge" ]; then
  rm -rf /var/lib/montage-agent /etc/montage-agent
  userdel montage-agent >/dev/null 2>&1 || true
fi
