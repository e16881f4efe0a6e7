// Package busy decides when an agent on someone's PC should take no new
// work: while other programs keep the CPU busy, while the PC runs on
// battery, and for a cool-down after either. Work already running goes on.
package busy

import (
	"fmt"
	"time"
)

// Pauser turns observations into a decision. Zero BusyCPU never pauses
// for the CPU.
type Pauser struct {
	BusyCPU  float64       // percent of all CPUs used by other programs
	Cooldown time.Duration // how long after the last busy moment to stay paused
	Battery  bool          // pause on battery

	last   time.Time
	reason string
}

// Observe records what was seen at now and says whether to pause, and why
// ("busy: other programs use 73% of the CPU", "on battery").
func (p *Pauser) Observe(now time.Time, othersPercent float64, onBattery bool) (bool, string) {
	switch {
	case p.Battery && onBattery:
		p.last, p.reason = now, "on battery"
		return true, p.reason
	case p.BusyCPU > 0 && othersPercent > p.BusyCPU:
		p.last, p.reason = now, fmt.Sprintf("busy: other programs use %.0f%% of the CPU (-busy-cpu %.0f)", othersPercent, p.BusyCPU)
		return true, p.reason
	}
	if !p.last.IsZero() && now.Sub(p.last) < p.Cooldown {
		return true, fmt.Sprintf("%s (cooling down, %s left)", p.reason, (p.Cooldown - now.Sub(p.last)).Round(time.Second))
	}
	return false, ""
}

// Sample is cumulative CPU time in seconds, over all CPUs: the machine's
// total, the part that was busy, and the part this process and its
// children (ffmpeg) used.
type Sample struct {
	Total, Busy, Own float64
}

// OthersPercent is the share of all CPUs that programs other than this
// one and its children used between two samples.
func OthersPercent(prev, cur Sample) float64 {
	total := cur.Total - prev.Total
	if total <= 0 {
		return 0
	}
	others := (cur.Busy - prev.Busy) - (cur.Own - prev.Own)
	return min(100, max(0, 100*others/total))
}

// Monitor samples the CPU and the battery each time it is asked, and
// decides through a Pauser with the load since the previous call.
type Monitor struct {
	Pauser  *Pauser
	Battery Battery // nil: never on battery
	Take    func() (Sample, error)
	Now     func() time.Time

	prev Sample
	have bool
}

// Check says whether to take no new work now, and why.
func (m *Monitor) Check() (bool, string) {
	var others float64
	if s, err := m.Take(); err == nil {
		if m.have {
			others = OthersPercent(m.prev, s)
		}
		m.prev, m.have = s, true
	}
	var onBattery bool
	if m.Battery != nil {
		onBattery, _ = m.Battery.OnBattery()
	}
	return m.Pauser.Observe(m.Now(), others, onBattery)
}
