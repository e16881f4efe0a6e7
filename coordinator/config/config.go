// Package config reads the coordinator's optional configuration file: YAML
// whose keys are the command-line flag names (with _ or -), plus retry_join
// for the addresses to join. Flags given on the command line win.
package config

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Apply sets every flag of fs that the file names and the command line did
// not. Unknown keys are errors, so a typo is not silently ignored. Secrets
// have no flags, so they cannot sit here either: their own files or
// environment variables hold them.
func Apply(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for key, val := range raw {
		name := strings.ReplaceAll(key, "_", "-")
		if name == "retry-join" {
			name = "join"
		}
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("config file %s: unknown key %q", path, key)
		}
		if given[name] {
			continue
		}
		var s string
		switch v := val.(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		case nil:
			continue
		default:
			s = fmt.Sprint(v)
		}
		if err := f.Value.Set(s); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, key, err)
		}
	}
	return nil
}
