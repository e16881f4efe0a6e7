package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/stream-montages/montage/agent/install"
	"github.com/stream-montages/montage/internal/flagfile"
)

// installOnly are the install command's own flags, not settings.
var installOnly = map[string]bool{"dry-run": true, "no-start": true, "os": true, "config": true, "version": true}

// installService writes the flags given to install into the service's
// config file and installs the service, or with dryRun prints both.
func installService(fs *flag.FlagSet, _ *options, dryRun, noStart bool, targetOS string) error {
	settings := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if !installOnly[f.Name] {
			settings[f.Name] = f.Value.String()
		}
	})
	if !dryRun {
		return install.Install(settings, noStart)
	}
	targets := []string{targetOS}
	if targetOS == "all" {
		targets = []string{"linux", "darwin", "windows"}
	}
	for _, goos := range targets {
		paths, err := install.PathsFor(goos)
		if err != nil {
			return err
		}
		exe := install.DefaultExecutable(goos)
		if goos == runtime.GOOS {
			if self, err := os.Executable(); err == nil {
				exe = self // what a real install here would run
			}
		}
		def, err := install.Definition(goos, install.Service{Executable: exe, Paths: paths})
		if err != nil {
			return err
		}
		s := map[string]string{"data-dir": paths.DataDir}
		for k, v := range settings {
			s[k] = v
		}
		conf, err := flagfile.Format(s)
		if err != nil {
			return err
		}
		fmt.Printf("# ==== %s: %s ====\n%s\n# ==== %s: service definition ====\n%s\n", goos, paths.ConfigFile, conf, goos, def)
	}
	return nil
}

func controlService(cmd string) error { return install.Control(cmd) }

func runAsService(work func(ctx context.Context) error) error { return install.Run(work) }
