#!/bin/sh
# Creates the service account and lets it read its config; starts nothing.
set -e
if ! getent passwd montage-agent >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/montage-agent --no-create-home --shell /usr/sbin/nologin montage-agent
fi
chown root:montage-agent /etc/montage-agent /etc/montage-agent/agent.yaml 2>/dev/null || true
chmod 0750 /etc/montage-agent
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
echo "montage-agent installed (not started): set coordinator in /etc/montage-agent/agent.yaml, then: systemctl enable --now montage-agent"
