package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// A library of 100,000 highlights (20 streamers, a year of days): listing
// one streamer's last month through the API, as `montagectl highlights
// list --streamer S --since D` does. Aim: under 50 ms.
func BenchmarkListHighlights100k(b *testing.B) {
	h := newHarnessStore(b, Config{}, nil)
	lib := montagev1connect.NewHighlightServiceClient(http.DefaultClient, h.url)
	ctx := context.Background()
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const total, streamers = 100_000, 20
	for i := 0; i < total; i += maxHighlightsPerCall {
		req := &montagev1.AddHighlightsRequest{}
		for k := i; k < i+maxHighlightsPerCall; k++ {
			req.Highlights = append(req.Highlights, &montagev1.LibraryHighlight{Streamer: fmt.Sprintf("streamer-%02d", k%streamers),
				Url: fmt.Sprintf("https://cdn.example/vod-%d.mp4", k/100), At: fmt.Sprint(k % 100 * 30), Duration: "45",
				Date: day0.AddDate(0, 0, k/streamers%365).Format(time.DateOnly), Score: int64(k % 17), Title: fmt.Sprint("clip ", k)})
		}
		if _, err := lib.AddHighlights(ctx, connect.NewRequest(req)); err != nil {
			b.Fatal(err)
		}
	}
	req := &montagev1.ListHighlightsRequest{Streamer: "streamer-07", Since: day0.AddDate(0, 0, 334).Format(time.DateOnly)}
	var n int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := lib.ListHighlights(ctx, connect.NewRequest(req))
		if err != nil {
			b.Fatal(err)
		}
		n = len(r.Msg.GetHighlights())
	}
	b.StopTimer()
	if n < 100 {
		b.Fatalf("listed %d highlights; the month should hold about 150", n)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
	b.ReportMetric(float64(n), "listed")
}
