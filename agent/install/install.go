// Package install says how montage-agent runs as a system service on each
// platform: where its config and data live, and the service definition
// (systemd unit, launchd plist, Windows service) installed for it. The
// definitions are plain text made here, so `montage-agent install
// --dry-run` prints exactly what is installed, and the unit shipped in
// deploy/systemd is this package's output.
package install

import (
	"fmt"
	"strings"
)

// Name is the service's name on every platform.
const Name = "montage-agent"

// User is the unprivileged account the Linux service runs as.
const User = "montage-agent"

// Paths are where the agent's files live on a platform.
type Paths struct {
	ConfigDir  string
	ConfigFile string
	DataDir    string
	LogFile    string // macOS only (launchd writes stdout there)
}

// PathsFor gives the platform's usual places.
func PathsFor(goos string) (Paths, error) {
	switch goos {
	case "linux":
		return Paths{ConfigDir: "/etc/montage-agent", ConfigFile: "/etc/montage-agent/agent.yaml", DataDir: "/var/lib/montage-agent"}, nil
	case "darwin":
		d := "/Library/Application Support/montage-agent"
		return Paths{ConfigDir: d, ConfigFile: d + "/agent.yaml", DataDir: d + "/data", LogFile: "/Library/Logs/montage-agent.log"}, nil
	case "windows":
		d := `C:\ProgramData\montage-agent`
		return Paths{ConfigDir: d, ConfigFile: d + `\agent.yaml`, DataDir: d + `\data`}, nil
	}
	return Paths{}, fmt.Errorf("no service support for %s (linux, darwin and windows have it)", goos)
}

// DefaultExecutable is where packages put the binary on goos.
func DefaultExecutable(goos string) string {
	switch goos {
	case "darwin":
		return "/usr/local/bin/montage-agent"
	case "windows":
		return `C:\Program Files\montage-agent\montage-agent.exe`
	}
	return "/usr/bin/montage-agent"
}

// Service is what a definition needs: the binary and its config file.
type Service struct {
	Executable string
	Paths      Paths
}

// Args are the service's arguments: run with the config file.
func (s Service) Args() []string { return []string{"run", "-config", s.Paths.ConfigFile} }

// Definition renders the service definition for goos.
func Definition(goos string, s Service) (string, error) {
	switch goos {
	case "linux":
		return Systemd(s), nil
	case "darwin":
		return Launchd(s), nil
	case "windows":
		return Windows(s), nil
	}
	return "", fmt.Errorf("no service support for %s (linux, darwin and windows have it)", goos)
}

// systemdQuote quotes a word of ExecStart when it needs it.
func systemdQuote(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\"'\\$%;") {
		return w
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", "$$", "%", "%%")
	return `"` + r.Replace(w) + `"`
}

// Systemd is the unit: an unprivileged user, the data dir as its state
// directory, and a sandbox that leaves it only what rendering needs (the
// network, its own directories, the GPU devices).
func Systemd(s Service) string {
	exec := []string{systemdQuote(s.Executable)}
	for _, a := range s.Args() {
		exec = append(exec, systemdQuote(a))
	}
	return `[Unit]
Description=Stream Montages render agent
Documentation=https://github.com/stream-montages/montage/blob/main/docs/operations.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=` + User + `
Group=` + User + `
ExecStart=` + strings.Join(exec, " ") + `
# SIGTERM hands running work back to the farm before the agent exits.
KillSignal=SIGTERM
TimeoutStopSec=30s
Restart=on-failure
RestartSec=10s
StateDirectory=montage-agent
StateDirectoryMode=0750
ConfigurationDirectory=montage-agent
# Stay out of the way of whoever uses the PC; ffmpeg lowers itself further.
Nice=5
IOSchedulingClass=best-effort
IOSchedulingPriority=7
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
UMask=0027

[Install]
WantedBy=multi-user.target
`
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// Launchd is the daemon plist: started at boot, restarted if it dies, run
// as a background process with low-priority I/O.
func Launchd(s Service) string {
	var args strings.Builder
	for _, a := range append([]string{s.Executable}, s.Args()...) {
		fmt.Fprintf(&args, "\t\t<string>%s</string>\n", xmlEscape(a))
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + Name + `</string>
	<key>ProgramArguments</key>
	<array>
` + args.String() + `	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ProcessType</key>
	<string>Background</string>
	<key>LowPriorityIO</key>
	<true/>
	<key>Nice</key>
	<integer>5</integer>
	<key>ExitTimeOut</key>
	<integer>30</integer>
	<key>StandardOutPath</key>
	<string>` + xmlEscape(s.Paths.LogFile) + `</string>
	<key>StandardErrorPath</key>
	<string>` + xmlEscape(s.Paths.LogFile) + `</string>
</dict>
</plist>
`
}

// windowsQuote quotes a command-line word as Windows programs parse them.
func windowsQuote(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\"") {
		return w
	}
	return `"` + strings.ReplaceAll(w, `"`, `\"`) + `"`
}

// Windows describes the service the Service Control Manager gets.
func Windows(s Service) string {
	cmd := []string{windowsQuote(s.Executable)}
	for _, a := range s.Args() {
		cmd = append(cmd, windowsQuote(a))
	}
	return `Service name:  ` + Name + `
Display name:  Stream Montages agent
Description:   Renders montage segments for a Stream Montages farm.
Start type:    automatic (delayed start)
Account:       LocalSystem
Recovery:      restart after 10 s on failure
Command line:  ` + strings.Join(cmd, " ") + `
`
}
