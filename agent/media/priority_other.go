//go:build !linux && !windows

package media

import "golang.org/x/sys/unix"

// lower gives a started ffmpeg the lowest CPU priority (nice 19; on macOS
// the kernel also treats it as background work).
func lower(pid, _ int) error {
	return unix.Setpriority(unix.PRIO_PROCESS, pid, 19)
}

// idle: no lower priority than lower's here.
func idle(int) error { return nil }

// normal: see idle.
func normal(int) error { return nil }
