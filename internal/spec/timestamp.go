// Package spec holds the rules of a job spec that the coordinator enforces and
// montagectl checks before sending: timestamp forms, limits and defaults.
package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxSeconds bounds any timestamp: longer than any stream VOD (100 hours).
const MaxSeconds = 100 * 3600

// ParseTimestamp reads the forms people copy from players and chat:
// "H:MM:SS", "M:SS" (both with optional ".fff"), plain seconds with an
// optional fraction ("90", "90.5") and Go-like units ("1h5m45s", "2m", "1.5s").
func ParseTimestamp(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty timestamp")
	}
	if len(s) > 32 {
		return 0, fmt.Errorf("%q is too long for a timestamp", truncate(s))
	}
	var (
		v   float64
		err error
	)
	switch {
	case strings.Contains(s, ":"):
		v, err = parseClock(s)
	case strings.ContainsAny(s, "hms"):
		v, err = parseUnits(s)
	default:
		v, err = parseSeconds(s)
	}
	if err != nil {
		return 0, err
	}
	if v > MaxSeconds {
		return 0, fmt.Errorf("%q is beyond %d hours", s, MaxSeconds/3600)
	}
	return v, nil
}

// parseSeconds accepts digits with an optional fraction; no sign, exponent,
// NaN or Inf (strconv.ParseFloat alone would take them all).
func parseSeconds(s string) (float64, error) {
	if !isDecimal(s) {
		return 0, fmt.Errorf("%q is not a timestamp (use H:MM:SS, M:SS, seconds or 1h5m45s)", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return v, nil
}

func isDecimal(s string) bool {
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func parseClock(s string) (float64, error) {
	bad := func() (float64, error) {
		return 0, fmt.Errorf("%q is not a timestamp (use H:MM:SS or M:SS, optionally with .fff)", s)
	}
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return bad()
	}
	last := parts[len(parts)-1]
	secs, frac, hasFrac := strings.Cut(last, ".")
	if !isDigits(secs) || len(secs) != 2 || (hasFrac && !isDigits(frac)) {
		return bad()
	}
	sec, _ := strconv.Atoi(secs)
	if sec >= 60 {
		return bad()
	}
	total := float64(sec)
	if hasFrac {
		f, _ := strconv.ParseFloat("0."+frac, 64)
		total += f
	}
	if len(parts) == 3 {
		h, m := parts[0], parts[1]
		if !isDigits(h) || len(h) > 3 || !isDigits(m) || len(m) != 2 {
			return bad()
		}
		hv, _ := strconv.Atoi(h)
		mv, _ := strconv.Atoi(m)
		if mv >= 60 {
			return bad()
		}
		total += float64(hv*3600 + mv*60)
	} else {
		m := parts[0]
		if !isDigits(m) || len(m) > 4 {
			return bad()
		}
		mv, _ := strconv.Atoi(m)
		total += float64(mv * 60)
	}
	return total, nil
}

// parseUnits reads "1h5m45s", "2m", "1.5s": each unit at most once, in order.
func parseUnits(s string) (float64, error) {
	bad := func() (float64, error) {
		return 0, fmt.Errorf("%q is not a timestamp (use units in order, like 1h5m45s)", s)
	}
	order := "hms"
	scale := map[byte]float64{'h': 3600, 'm': 60, 's': 1}
	total, next := 0.0, 0
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "hms")
		if i <= 0 {
			return bad()
		}
		unit := rest[i]
		pos := strings.IndexByte(order, unit)
		if pos < next {
			return bad()
		}
		num := rest[:i]
		if !isDecimal(num) || (unit != 's' && strings.Contains(num, ".")) {
			return bad()
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return bad()
		}
		total += v * scale[unit]
		next = pos + 1
		rest = rest[i+1:]
	}
	return total, nil
}

// FormatTimestamp renders seconds as H:MM:SS.fff (or M:SS.fff under an hour).
func FormatTimestamp(sec float64) string {
	ms := int64(math.Round(sec * 1000))
	h := ms / 3600000
	m := ms / 60000 % 60
	s := ms / 1000 % 60
	f := ms % 1000
	out := ""
	if h > 0 {
		out = fmt.Sprintf("%d:%02d:%02d", h, m, s)
	} else {
		out = fmt.Sprintf("%d:%02d", m, s)
	}
	if f != 0 {
		out += fmt.Sprintf(".%03d", f)
	}
	return out
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
