package spec

import (
	"math"
	"testing"
)

func TestParseTimestamp(t *testing.T) {
	cases := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1:05:45", 3945, true},
		{"0:00:12", 12, true},
		{"1:05:45.250", 3945.25, true},
		{"5:07", 307, true},
		{"0:05", 5, true},
		{"12:30.5", 750.5, true},
		{"90", 90, true},
		{"90.5", 90.5, true},
		{".5", 0.5, true},
		{"0", 0, true},
		{"1h5m45s", 3945, true},
		{"2m", 120, true},
		{"1.5s", 1.5, true},
		{"1h", 3600, true},
		{"4s", 4, true},
		{" 7 ", 7, true},
		{"", 0, false},
		{"-5", 0, false},
		{"1e3", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"ten past", 0, false},
		{"1:60", 0, false},
		{"1:5", 0, false},
		{"1:60:00", 0, false},
		{"1:2:03", 0, false},
		{"1:02:03:04", 0, false},
		{":30", 0, false},
		{"1m2h", 0, false},
		{"1.5m", 0, false},
		{"5x", 0, false},
		{"m", 0, false},
		{"1s2s", 0, false},
		{"101:00:00", 0, false},
		{"1.2.3", 0, false},
		{"1:30.", 0, false},
	}
	for _, c := range cases {
		got, err := ParseTimestamp(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseTimestamp(%q) error = %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && math.Abs(got-c.want) > 1e-9 {
			t.Errorf("ParseTimestamp(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestFormatTimestampRoundTrip(t *testing.T) {
	for _, v := range []float64{0, 5, 59.5, 60, 3599.999, 3945.25, 36000} {
		s := FormatTimestamp(v)
		got, err := ParseTimestamp(s)
		if err != nil || math.Abs(got-v) > 0.0005 {
			t.Errorf("FormatTimestamp(%v) = %q parses to %v, %v", v, s, got, err)
		}
	}
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"1:05:45", "5:07.250", "90.5", "1h5m45s", "", "-1", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseTimestamp(s)
		if err != nil {
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > MaxSeconds {
			t.Fatalf("ParseTimestamp(%q) = %v: outside [0, %d]", s, v, MaxSeconds)
		}
		// What we print we must read back to the millisecond.
		back, err := ParseTimestamp(FormatTimestamp(v))
		if err != nil || math.Abs(back-v) > 0.0006 {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, v, FormatTimestamp(v), back, err)
		}
	})
}
