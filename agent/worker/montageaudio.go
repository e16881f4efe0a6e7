package worker

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/stream-montages/montage/agent/media"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// montageAudio is a montage's one AAC encode, fed the segments' audio in
// the concat's order. The concat starts one itself, or takes the one this
// agent began while it rendered the montage's first segments (see spool):
// then only the last segments are left to encode when the renders end.
type montageAudio struct {
	tools   media.Tools
	path    string
	bitrate string
	feed    *media.Feed
	// fed are the segments encoded so far, in order.
	fed     []fedSegment
	at      float64 // montage seconds fed
	samples int64   // montage samples fed
	err     error

	mu sync.Mutex
	// background: fed only on CPU time the renders leave (see spool)
	// until the concat needs it (hurry).
	background bool
	decoder    int // the running decoder's process id (0: none)
}

type fedSegment struct {
	sha     string
	seconds float64
}

// startMontageAudio starts the encoder that writes path.
func startMontageAudio(ctx context.Context, tools media.Tools, bitrate, path string, background bool) (*montageAudio, error) {
	f, err := tools.StartFeed(ctx, media.MontageAudioArgs(bitrate, path), background)
	if err != nil {
		return nil, fmt.Errorf("montage audio: %w", err)
	}
	return &montageAudio{tools: tools, path: path, bitrate: bitrate, feed: f, background: background}, nil
}

// hurry: the concat waits for this encode now. It may run while add does.
func (m *montageAudio) hurry() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.background {
		m.background = false
		m.feed.Hurry()
		if m.decoder != 0 {
			media.Prioritize(m.decoder)
		}
	}
}

// add encodes one segment's audio: as many samples as its seconds move the
// montage's end, counted from the montage's start so that rounding never
// accumulates. A failure ends this encode; the concat then starts another.
func (m *montageAudio) add(ctx context.Context, segment, sha string, seconds float64) error {
	if m.err != nil {
		return m.err
	}
	if ended, err := m.feed.Exited(); ended {
		m.err = fmt.Errorf("montage audio: %w", err)
		return m.err
	}
	end := int64(math.Round((m.at + seconds) * media.MontageRate))
	if seconds <= 0 || end <= m.samples {
		m.err = fmt.Errorf("montage audio: segment %d lasts %v s", len(m.fed), seconds)
		return m.err
	}
	m.mu.Lock()
	background := m.background
	m.mu.Unlock()
	err := m.tools.RunFFmpegTo(ctx, media.SegmentPCMArgs(segment, end-m.samples), m.feed.Input(), background, func(pid int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.decoder = pid
		if background && !m.background { // hurried while it started
			media.Prioritize(pid)
		}
	})
	m.mu.Lock()
	m.decoder = 0
	m.mu.Unlock()
	if err != nil {
		m.err = fmt.Errorf("montage audio of segment %d: %w", len(m.fed), err)
		return m.err
	}
	m.at, m.samples = m.at+seconds, end
	m.fed = append(m.fed, fedSegment{sha: sha, seconds: seconds})
	return nil
}

// continues reports whether what was fed is the start of segs, encoded at
// bitrate: the same committed objects with the same lengths, in the same
// order.
func (m *montageAudio) continues(segs []*montagev1.ConcatSegment, bitrate string) bool {
	if m.err != nil || len(m.fed) > len(segs) || m.bitrate != bitrate {
		return false
	}
	for i, f := range m.fed {
		if f.sha == "" || f.sha != segs[i].GetSha256() || f.seconds != segs[i].GetDurationSeconds() {
			return false
		}
	}
	return true
}

// finish ends the input and waits for the M4A.
func (m *montageAudio) finish() error {
	if m.err != nil {
		m.feed.Abort()
		return m.err
	}
	if err := m.feed.Finish(); err != nil {
		return fmt.Errorf("montage audio: %w", err)
	}
	return nil
}

// abort stops the encode and removes what it wrote.
func (m *montageAudio) abort() {
	m.feed.Abort()
	_ = os.Remove(m.path)
}
