package disk

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Available agrees with df about the filesystem of a directory, less the
// reserve.
func TestAvailableMatchesDF(t *testing.T) {
	dir := t.TempDir()
	got, err := Available(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("df", "-B1", "--output=avail", dir).Output()
	if err != nil {
		t.Skipf("df: %v", err)
	}
	f := strings.Fields(string(out))
	dfAvail, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := max(0, dfAvail-Reserve)
	if diff := got - want; diff < -(64<<20) || diff > 64<<20 { // files come and go meanwhile
		t.Errorf("Available = %d, df says %d free (less the reserve: %d)", got, dfAvail, want)
	}
	if _, err := Available(dir + "/missing/dir"); err == nil {
		t.Error("no error for a directory that does not exist")
	}
}
