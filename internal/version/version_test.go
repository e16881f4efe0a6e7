package version

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = "v9.8.7"
	s := String()
	if !strings.HasPrefix(s, "v9.8.7 (") || !strings.HasSuffix(s, ")") {
		t.Errorf("String() = %q, want the link-time version followed by the revision in parentheses", s)
	}
	if Revision() == "" {
		t.Error("Revision() is empty; want the commit or \"unknown\"")
	}
}
