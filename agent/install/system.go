package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/kardianos/service"

	"github.com/stream-montages/montage/internal/flagfile"
)

// program adapts a context-driven run to kardianos/service.
type program struct {
	work   func(ctx context.Context) error
	cancel context.CancelFunc
	done   chan error
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	go func() { p.done <- p.work(ctx) }()
	return nil
}

func (p *program) Stop(service.Service) error {
	p.cancel()
	return <-p.done
}

func newService(p *program, s Service) (service.Service, error) {
	opts := service.KeyValue{
		// Our own definitions, fully rendered (no template directives), so
		// what is installed is what --dry-run prints.
		"SystemdScript":          Systemd(s),
		"LaunchdConfig":          Launchd(s),
		"DelayedAutoStart":       true,
		"OnFailure":              "restart",
		"OnFailureDelayDuration": "10s",
	}
	cfg := &service.Config{Name: Name, DisplayName: "Stream Montages agent",
		Description: "Renders montage segments for a Stream Montages farm.",
		Executable:  s.Executable, Arguments: s.Args(), Option: opts}
	return service.New(p, cfg)
}

// Run runs work under the service manager until it stops the service.
func Run(work func(ctx context.Context) error) error {
	p := &program{work: work}
	svc, err := newService(p, Service{})
	if err != nil {
		return err
	}
	return svc.Run()
}

// Install writes the config file (settings: flag name → value), creates
// the service user on Linux, installs the service and, unless noStart,
// starts it. It needs root (administrator on Windows).
func Install(settings map[string]string, noStart bool) error {
	paths, err := PathsFor(runtime.GOOS)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if _, ok := settings["data-dir"]; !ok {
		settings["data-dir"] = paths.DataDir
	}
	if err := os.MkdirAll(paths.ConfigDir, 0o750); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := flagfile.Write(paths.ConfigFile, settings); err != nil {
		return err
	}
	if runtime.GOOS == "linux" {
		if err := ensureUser(paths); err != nil {
			return err
		}
	} else if err := os.MkdirAll(paths.DataDir, 0o750); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	svc, err := newService(&program{}, Service{Executable: exe, Paths: paths})
	if err != nil {
		return err
	}
	if err := svc.Install(); err != nil {
		return fmt.Errorf("install the service: %w", err)
	}
	fmt.Printf("installed the %s service (config %s, data %s)\n", Name, paths.ConfigFile, settings["data-dir"])
	if noStart {
		return nil
	}
	if err := svc.Start(); err != nil {
		return fmt.Errorf("start the service: %w", err)
	}
	fmt.Println("started; montagectl agents shows it once it has registered")
	return nil
}

// ensureUser creates the unprivileged service account and lets it read
// the config file.
func ensureUser(paths Paths) error {
	u, err := user.Lookup(User)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return fmt.Errorf("look up user %s: %w", User, err)
		}
		out, err := exec.Command("useradd", "--system", "--user-group", "--home-dir", paths.DataDir, "--no-create-home",
			"--shell", "/usr/sbin/nologin", User).CombinedOutput()
		if err != nil {
			return fmt.Errorf("create user %s: %v: %s", User, err, out)
		}
		if u, err = user.Lookup(User); err != nil {
			return fmt.Errorf("look up user %s: %w", User, err)
		}
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("group of %s: %w", User, err)
	}
	for _, p := range []string{paths.ConfigDir, paths.ConfigFile} {
		if err := os.Chown(p, 0, gid); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	return nil
}

// Control uninstalls, starts, stops or reports the installed service.
func Control(cmd string) error {
	svc, err := newService(&program{}, Service{})
	if err != nil {
		return err
	}
	switch cmd {
	case "uninstall":
		_ = svc.Stop()
		if err := svc.Uninstall(); err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
		fmt.Println("uninstalled; the config and data directories are kept (remove them by hand to forget this agent)")
	case "start":
		return svc.Start()
	case "stop":
		return svc.Stop()
	case "status":
		st, err := svc.Status()
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		fmt.Println(map[service.Status]string{service.StatusRunning: "running", service.StatusStopped: "stopped"}[st])
	}
	return nil
}
