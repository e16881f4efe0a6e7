package busy

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPauser(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := &Pauser{BusyCPU: 50, Cooldown: 2 * time.Minute, Battery: true}
	steps := []struct {
		at       time.Duration
		others   float64
		battery  bool
		paused   bool
		contains string
	}{
		{0, 10, false, false, ""},
		{10 * time.Second, 80, false, true, "other programs use 80%"},
		{20 * time.Second, 5, false, true, "cooling down, 1m50s left"},
		{129 * time.Second, 5, false, true, "cooling down, 1s left"},
		{130 * time.Second, 5, false, false, ""},
		{140 * time.Second, 0, true, true, "on battery"},
		{200 * time.Second, 0, false, true, "on battery (cooling down"},
		{261 * time.Second, 50, false, false, ""}, // exactly at the limit is not over it
	}
	for _, s := range steps {
		paused, why := p.Observe(t0.Add(s.at), s.others, s.battery)
		if paused != s.paused || !strings.Contains(why, s.contains) {
			t.Errorf("at %s (others %.0f%%, battery %v): paused %v %q, want %v containing %q", s.at, s.others, s.battery, paused, why, s.paused, s.contains)
		}
	}
	off := &Pauser{}
	if paused, _ := off.Observe(t0, 100, true); paused {
		t.Error("a pauser with no limits paused")
	}
}

func TestOthersPercent(t *testing.T) {
	for _, c := range []struct {
		prev, cur Sample
		want      float64
	}{
		{Sample{0, 0, 0}, Sample{Total: 200, Busy: 120, Own: 100}, 10},
		{Sample{100, 50, 40}, Sample{Total: 100, Busy: 50, Own: 40}, 0}, // no time passed
		{Sample{0, 0, 0}, Sample{Total: 100, Busy: 20, Own: 30}, 0},     // never negative
	} {
		if got := OthersPercent(c.prev, c.cur); got != c.want {
			t.Errorf("OthersPercent(%+v, %+v) = %v, want %v", c.prev, c.cur, got, c.want)
		}
	}
}

func TestSysfsBattery(t *testing.T) {
	dir := t.TempDir()
	supply := func(name string, kv map[string]string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join(dir, name, k), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := SysfsBattery{Dir: dir}
	if on, err := b.OnBattery(); err != nil || on {
		t.Fatalf("no supplies: %v %v", on, err)
	}
	supply("BAT0", map[string]string{"type": "Battery", "status": "Discharging"})
	supply("AC", map[string]string{"type": "Mains", "online": "0"})
	if on, err := b.OnBattery(); err != nil || !on {
		t.Fatalf("discharging, unplugged: %v %v", on, err)
	}
	supply("AC", map[string]string{"type": "Mains", "online": "1"})
	if on, _ := b.OnBattery(); on {
		t.Fatal("plugged in counts as on battery")
	}
	if on, err := (SysfsBattery{Dir: filepath.Join(dir, "missing")}).OnBattery(); err != nil || on {
		t.Fatalf("no power_supply class: %v %v", on, err)
	}
}

// burn starts a CPU-burning loop. As a descendant it is this process's
// own work; orphaned (its parent shell exits at once) it is another
// program's.
func burn(t *testing.T, orphan bool) {
	t.Helper()
	if !orphan {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return
	}
	out, err := exec.Command("sh", "-c", `sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 & echo $!`).Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
}

// sampleUntil samples every 500 ms until cond holds of the interval since
// the previous sample (with its wall time), or 15 s pass.
func sampleUntil(t *testing.T, what string, cond func(prev, cur Sample, wall float64) bool) {
	t.Helper()
	prev, err := Take()
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	deadline := last.Add(15 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		cur, err := Take()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if cond(prev, cur, now.Sub(last).Seconds()) {
			return
		}
		prev, last = cur, now
	}
	t.Fatalf("never saw %s", what)
}

// Another program burning a CPU shows as others' load, enough to pause.
func TestOtherProgramsLoadIsSeen(t *testing.T) {
	burn(t, true)
	one := 100 / float64(runtime.NumCPU()) // one busy CPU, as a share of all
	sampleUntil(t, "the other program's load", func(prev, cur Sample, _ float64) bool {
		return OthersPercent(prev, cur) > 0.6*one
	})
}

// The agent's own children (ffmpeg) are its own work, not others' load:
// the burning child's CPU time shows in Own. (Compared with the wall
// time, not the machine's load, which other tests share.)
func TestOwnChildrenAreOwnWork(t *testing.T) {
	burn(t, false)
	sampleUntil(t, "the child's time counted as own", func(prev, cur Sample, wall float64) bool {
		return (cur.Own-prev.Own)/wall > 0.3
	})
}
