package media

import (
	"golang.org/x/sys/unix"
)

// ioprioIdle is IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT: disk I/O only
// when nobody else wants the disk.
const ioprioIdle = 3 << 13

// lower puts a started ffmpeg at the lowest CPU and I/O priority (nice 19,
// the idle I/O class) and, with threads > 0, on that many CPUs, so that
// whoever uses the PC does not feel the farm.
func lower(pid, threads int) error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, pid, 19); err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, 1 /* IOPRIO_WHO_PROCESS */, uintptr(pid), ioprioIdle); errno != 0 {
		return errno
	}
	if threads > 0 {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			return err
		}
		var mine unix.CPUSet
		for cpu, n := 0, 0; cpu < 1024 && n < threads; cpu++ {
			if set.IsSet(cpu) {
				mine.Set(cpu)
				n++
			}
		}
		return unix.SchedSetaffinity(pid, &mine)
	}
	return nil
}

// idle runs a started ffmpeg only when nothing else wants the CPU
// (SCHED_IDLE, beneath even nice 19): work done ahead of need, which must
// not slow the renders it overlaps. normal undoes it when the work is
// needed now.
func idle(pid int) error {
	return unix.SchedSetAttr(pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedIdle}, 0)
}

// normal puts an idle ffmpeg back at the renders' priority (nice 19).
func normal(pid int) error {
	return unix.SchedSetAttr(pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedOther, Nice: 19}, 0)
}

const (
	schedOther = 0
	schedIdle  = 5
)
