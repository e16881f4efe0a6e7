package worker

import (
	"fmt"
	"testing"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// A keyframe cut's render fills a third of a slot; everything else a
// whole one. An agent of one slot so runs up to three copying renders at
// once, or one encode (alongside copying renders it had already begun).
func TestBusySlots(t *testing.T) {
	render := func(cut string) *montagev1.Lease {
		return &montagev1.Lease{Type: montagev1.TaskType_TASK_TYPE_RENDER, Profile: &montagev1.RenderProfile{Cut: cut}}
	}
	concat := &montagev1.Lease{Type: montagev1.TaskType_TASK_TYPE_CONCAT, Profile: &montagev1.RenderProfile{Cut: "keyframe"}}
	for _, c := range []struct {
		name    string
		running []*montagev1.Lease
		busy    int
	}{
		{"idle", nil, 0},
		{"one copy", []*montagev1.Lease{render("keyframe")}, 0},
		{"two copies", []*montagev1.Lease{render("keyframe"), render("keyframe")}, 0},
		{"three copies", []*montagev1.Lease{render("keyframe"), render("keyframe"), render("keyframe")}, 1},
		{"an encode", []*montagev1.Lease{render("")}, 1},
		{"a smart cut encodes", []*montagev1.Lease{render("smart")}, 1},
		{"a keyframe montage's concat", []*montagev1.Lease{concat}, 1},
		{"an encode and two copies", []*montagev1.Lease{render(""), render("keyframe"), render("keyframe")}, 1},
		{"an encode and three copies", []*montagev1.Lease{render("exact"), render("keyframe"), render("keyframe"), render("keyframe")}, 2},
	} {
		a := &Agent{running: map[string]*running{}}
		for i, l := range c.running {
			a.running[fmt.Sprint(i)] = &running{lease: l}
		}
		if got := a.busy(); got != c.busy {
			t.Errorf("%s: %d slots busy, want %d", c.name, got, c.busy)
		}
	}
}
