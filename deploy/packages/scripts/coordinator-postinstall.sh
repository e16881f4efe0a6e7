#!/bin/sh
# Creates the service account and lets it read its config; starts nothing.
set -e
if ! getent passwd montage >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/montage-coordinator --no-create-home --shell /usr/sbin/nologin montage
fi
chown root:montage /etc/montage /etc/montage/coordinator.yaml 2>/dev/null || true
chmod 0750 /etc/montage
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
echo "montage-coordinator installed (not started): edit /etc/montage/coordinator.yaml, then: systemctl enable --now montage-coordinator"
