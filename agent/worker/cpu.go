package worker

import (
	"fmt"
	"runtime"

	"github.com/shirou/gopsutil/v4/cpu"
)

// cpuName is the PC's CPU model and thread count, for people telling
// agents apart ("AMD Ryzen 7 5800X, 16 threads").
func cpuName() string {
	model := ""
	if info, err := cpu.Info(); err == nil && len(info) > 0 {
		model = info[0].ModelName
	}
	if model == "" {
		model = runtime.GOARCH
	}
	return fmt.Sprintf("%s, %d threads", model, runtime.NumCPU())
}
