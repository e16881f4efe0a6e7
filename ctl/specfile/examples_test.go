package specfile

import (
	"path/filepath"
	"testing"

	"github.com/stream-montages/montage/internal/spec"
)

// Every example spec parses and validates as it is.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := spec.Validate(s); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
