// Command packages builds the .deb and .rpm packages of the agent and the
// coordinator with nfpm, from the binaries scripts/release.sh built:
//
//	go run ./deploy/packages -version 0.1.0 -dist dist -arch amd64,arm64
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "packages:", err)
		os.Exit(1)
	}
}

func run() error {
	version := flag.String("version", "", "package version (digits first, e.g. 0.1.0)")
	dist := flag.String("dist", "dist", "directory of the built binaries (DIST/linux_ARCH/…); packages are written there")
	arches := flag.String("arch", "amd64,arm64", "comma-separated architectures")
	formats := flag.String("format", "deb,rpm", "comma-separated package formats")
	flag.Parse()
	if v := *version; v == "" || v[0] < '0' || v[0] > '9' {
		return fmt.Errorf("-version %q: must start with a digit", *version)
	}
	out, err := filepath.Abs(*dist)
	if err != nil {
		return err
	}
	// Paths in the package configs are relative to this directory.
	here, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat("agent.yaml"); err != nil {
		if err := os.Chdir(filepath.Join(here, "deploy", "packages")); err != nil {
			return fmt.Errorf("run from the repository root or deploy/packages: %w", err)
		}
	}
	for _, arch := range strings.Split(*arches, ",") {
		for _, pkg := range []string{"agent", "coordinator"} {
			env := map[string]string{"VERSION": *version, "ARCH": arch, "DIST": out}
			raw, err := os.ReadFile(pkg + ".yaml")
			if err != nil {
				return err
			}
			cfg, err := nfpm.Parse(strings.NewReader(os.Expand(string(raw), func(k string) string { return env[k] })))
			if err != nil {
				return fmt.Errorf("%s.yaml: %w", pkg, err)
			}
			for _, format := range strings.Split(*formats, ",") {
				p, err := build(cfg, format, out)
				if err != nil {
					return fmt.Errorf("%s %s %s: %w", pkg, arch, format, err)
				}
				fmt.Println(p)
			}
		}
	}
	return nil
}

func build(cfg nfpm.Config, format, out string) (string, error) {
	info, err := cfg.Get(format)
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", err
	}
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	path := filepath.Join(out, pkgr.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	return path, f.Close()
}
