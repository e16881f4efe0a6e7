//go:build !linux && !windows

package media

import "golang.org/x/sys/unix"

// lower gives a started ffmpeg the lowest CPU priority (nice 19; on macOS
// the kernel also treats it as background work).
func lower(pid, _ int) error {
	return unix.Setpriority(unix.PRIO_PROCESS, pid, 19)
}
