package worker

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stream-montages/montage/agent/media"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// A render starts as if the source had audio while the stream probe runs:
// kept when it has, run again with silence when it has none, stopped when
// the probe refuses the source.
func TestSpeculateOnAudio(t *testing.T) {
	probed := func(info media.Info, err error) *streamProbe {
		p := &streamProbe{done: make(chan struct{}), info: info, err: err}
		close(p.done)
		return p
	}
	cases := []struct {
		name    string
		probe   *streamProbe
		runs    []bool // HasAudio of each run, in order
		wantErr string
	}{
		{"audio", probed(media.Info{HasVideo: true, HasAudio: true}, nil), []bool{true}, ""},
		{"silent source", probed(media.Info{HasVideo: true}, nil), []bool{true, false}, ""},
		{"refused", probed(media.Info{}, errors.New("source has no video stream")), []bool{true}, "no video stream"},
		{"separate audio input", nil, []bool{false}, ""},
	}
	for _, c := range cases {
		var (
			mu   sync.Mutex
			runs []bool
		)
		run := func(ctx context.Context, r media.Render) (float64, *montagev1.SourceFacts, error) {
			mu.Lock()
			runs = append(runs, r.HasAudio)
			mu.Unlock()
			if !r.HasAudio && c.probe != nil || c.wantErr == "" {
				return 5, &montagev1.SourceFacts{}, nil
			}
			<-ctx.Done() // a refused source's speculative run is stopped
			return 0, nil, ctx.Err()
		}
		n, _, err := Renderer{}.speculate(context.Background(), c.probe, media.Render{HasAudio: c.probe != nil}, run)
		if c.wantErr != "" {
			if err == nil || err.Error() != "source has no video stream" {
				t.Errorf("%s: err %v, want the probe's", c.name, err)
			}
		} else if err != nil || n != 5 {
			t.Errorf("%s: %v, %v", c.name, n, err)
		}
		if len(runs) != len(c.runs) {
			t.Errorf("%s: runs with audio %v, want %v", c.name, runs, c.runs)
			continue
		}
		for i := range runs {
			if runs[i] != c.runs[i] {
				t.Errorf("%s: runs with audio %v, want %v", c.name, runs, c.runs)
			}
		}
	}
}
