package webhook

import (
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	body := []byte(`{"job_id":"j1"}`)
	sig := Sign("s3cret", body)
	// HMAC-SHA256("s3cret", body), computed independently (openssl dgst -sha256 -hmac s3cret).
	if sig != "sha256=20caa62533732ea387ea57503828d812398c27f4262e85e2f06fad2d8bc86507" {
		t.Fatalf("signature %q", sig)
	}
	if !Verify("s3cret", body, sig) || Verify("other", body, sig) || Verify("s3cret", []byte(`{"job_id":"j2"}`), sig) {
		t.Fatal("verify accepts a wrong key or body, or refuses the right one")
	}
}

func TestBackoff(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 8: time.Hour, 20: time.Hour} {
		if next, give := Next(t0, t0, n, 0); next.Sub(t0) != want || give {
			t.Errorf("after %d failures: %s (give up %v), want %s", n, next.Sub(t0), give, want)
		}
	}
	if next, _ := Next(t0, t0, 1, 0.99); next.Sub(t0) <= 30*time.Second || next.Sub(t0) > 36*time.Second {
		t.Errorf("jitter out of a fifth: %s", next.Sub(t0))
	}
	if _, give := Next(t0, t0.Add(23*time.Hour+30*time.Minute), 30, 0); !give {
		t.Error("retries past a day do not give up")
	}
}

func TestChaptersText(t *testing.T) {
	got := ChaptersText([]Chapter{{"Intro", 0}, {"Clutch", 65.4}, {"Late", 3725}})
	if got != "0:00 Intro\n1:05 Clutch\n1:02:05 Late\n" {
		t.Fatalf("%q", got)
	}
}

func TestCheckURL(t *testing.T) {
	for raw, ok := range map[string]bool{"https://hooks.example/x": true, "http://127.0.0.1:9/h": true, "ftp://x/y": false, "https:///x": false, "hooks.example": false} {
		if err := CheckURL(raw); (err == nil) != ok {
			t.Errorf("%q: %v", raw, err)
		}
	}
}
