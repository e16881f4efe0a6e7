package media

import "golang.org/x/sys/windows"

// lower puts a started ffmpeg in the below-normal priority class (threads
// is not applied on Windows: ffmpeg's own thread count stands).
func lower(pid, _ int) error {
	h, err := windows.OpenProcess(windows.PROCESS_SET_INFORMATION, false, uint32(pid))
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	return windows.SetPriorityClass(h, windows.BELOW_NORMAL_PRIORITY_CLASS)
}

// idle runs a started ffmpeg only when the PC is otherwise idle: work done
// ahead of need, which must not slow the renders it overlaps.
func idle(pid int) error { return setClass(pid, windows.IDLE_PRIORITY_CLASS) }

// normal puts an idle ffmpeg back at the renders' priority.
func normal(pid int) error { return setClass(pid, windows.BELOW_NORMAL_PRIORITY_CLASS) }

func setClass(pid int, class uint32) error {
	h, err := windows.OpenProcess(windows.PROCESS_SET_INFORMATION, false, uint32(pid))
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	return windows.SetPriorityClass(h, class)
}
