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
