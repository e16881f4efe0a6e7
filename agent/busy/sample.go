package busy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/process"
)

// Take samples the machine's CPU times and those of this process with its
// live descendants and its reaped children (whose time the OS keeps in
// this process's children usage), so a render that ends between samples
// is not mistaken for another program.
func Take() (Sample, error) {
	ts, err := cpu.Times(false)
	if err != nil || len(ts) == 0 {
		return Sample{}, fmt.Errorf("cpu times: %v", err)
	}
	t := ts[0]
	// Guest time is already counted in user time.
	total := t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	s := Sample{Total: total, Busy: total - t.Idle - t.Iowait}
	self, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		return Sample{}, err
	}
	s.Own = treeTime(self, 0) + reapedChildren()
	return s, nil
}

func treeTime(p *process.Process, depth int) float64 {
	var sum float64
	if t, err := p.Times(); err == nil {
		sum = t.User + t.System
	}
	if depth > 8 {
		return sum
	}
	kids, _ := p.Children()
	for _, k := range kids {
		sum += treeTime(k, depth+1)
	}
	return sum
}

// Battery tells whether the PC runs on battery now.
type Battery interface {
	OnBattery() (bool, error)
}

// SysfsBattery reads Linux's power supplies (Dir is /sys/class/power_supply):
// on battery when a battery discharges and no mains supply is online. A
// PC without a battery never is; elsewhere it reports false.
type SysfsBattery struct{ Dir string }

func (b SysfsBattery) OnBattery() (bool, error) {
	entries, err := os.ReadDir(b.Dir)
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	read := func(dir, name string) string {
		v, _ := os.ReadFile(filepath.Join(b.Dir, dir, name))
		return strings.TrimSpace(string(v))
	}
	discharging, mains := false, false
	for _, e := range entries {
		switch read(e.Name(), "type") {
		case "Mains", "USB", "USB_C", "USB_PD":
			if read(e.Name(), "online") == "1" {
				mains = true
			}
		case "Battery":
			if read(e.Name(), "status") == "Discharging" {
				discharging = true
			}
		}
	}
	return discharging && !mains, nil
}
