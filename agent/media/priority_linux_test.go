package media

import (
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// A process lowered runs at nice 19, in the idle I/O class, on one CPU.
func TestLowerPriority(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	if err := lower(pid, 1); err != nil {
		t.Fatal(err)
	}
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, pid)
	if err != nil {
		t.Fatal(err)
	}
	// The raw syscall returns 20 - nice.
	if nice := 20 - prio; nice != 19 {
		t.Errorf("nice %d, want 19", nice)
	}
	io, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, 1, uintptr(pid), 0)
	if errno != 0 || io>>13 != 3 {
		t.Errorf("I/O priority %#x (%v), want the idle class", io, errno)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil || set.Count() != 1 {
		t.Errorf("affinity: %d CPUs (%v), want 1", set.Count(), err)
	}
}
