// Package flagfile reads and writes configuration files of flag settings:
// YAML whose keys are the command-line flag names (with _ or -). Both the
// coordinator and the agent take one; flags given on the command line win.
package flagfile

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
// aliases maps other key names to flag names (retry_join → join).
func Apply(fs *flag.FlagSet, path string, aliases map[string]string) error {
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
		if a, ok := aliases[name]; ok {
			name = a
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

// Write writes settings (flag name → value) as a config file readable by
// its owner and group only: it may name token files and enrolment tokens.
func Write(path string, settings map[string]string) error {
	b, err := Format(settings)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return nil
}

// Format is the config file's text for settings (keys sorted).
func Format(settings map[string]string) ([]byte, error) {
	b, err := yaml.Marshal(settings)
	if err != nil {
		return nil, err
	}
	header := "# Settings of montage: keys are command-line flag names; flags given\n# on the command line win.\n"
	return append([]byte(header), b...), nil
}
