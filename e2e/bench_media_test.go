package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/testmedia"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Media benchmarks (make bench runs them; figures in docs/benchmarks.md).
// They run whole jobs through real processes, so each reports its own
// metrics and runs once per -benchtime iteration.

func benchSources(b *testing.B) {
	b.Helper()
	if _, err := os.Stat(filepath.Join(mediaDir, "long.m3u8")); err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testmedia.Generate(ctx, mediaDir, testmedia.Source{Name: "long.mp4", Width: 1280, Height: 720, FPS: "30",
		SampleRate: 48000, Channels: 2, Seconds: 60, HLS: true}); err != nil {
		b.Fatal(err)
	}
}

func runJob(b *testing.B, url, spec string) time.Duration {
	b.Helper()
	t0 := time.Now()
	r := ctl(b, url, "submit", "--wait", "-q", writeSpec(b, spec))
	if r.code != 0 {
		b.Fatalf("job failed: %s %s", r.stdout, r.stderr)
	}
	d := time.Since(t0)
	perAgent := map[string]int{}
	for _, task := range getJob(b, url, strings.TrimSpace(r.stdout)).GetTasks() {
		perAgent[task.GetAgentId()]++
	}
	b.Logf("job took %v; tasks per agent %v", d, perAgent)
	return d
}

func fileSize(b *testing.B, name string) int64 {
	b.Helper()
	st, err := os.Stat(filepath.Join(mediaDir, name))
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

// Bytes the source server sends for one 20-second highlight of a 60-second
// 720p source, against the clip's own share of the source's bytes. The cut
// starts at 30.5 s: a cut exactly on an HLS segment boundary also fetches
// the segment before it (ffmpeg seeks to the keyframe before the cut).
func BenchmarkSourceBytesPerHighlight(b *testing.B) {
	benchSources(b)
	c := startCoordinator(b, b.TempDir(), freePort(b), "-cache-budget", "-1")
	startAgent(b, c.url, b.TempDir())
	var hlsBytes int64
	entries, _ := os.ReadDir(mediaDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "long-") && strings.HasSuffix(e.Name(), ".ts") {
			hlsBytes += fileSize(b, e.Name())
		}
	}
	for i := 0; i < b.N; i++ {
		for _, src := range []struct{ name, path string }{{"mp4", "long.mp4"}, {"hls", "long.m3u8"}} {
			before := mediaServer.BytesSent.Load()
			runJob(b, c.url, fmt.Sprintf("highlights:\n  - {url: %s/%s, at: 30.5, duration: 20}\n", mediaURL, src.path))
			sent := mediaServer.BytesSent.Load() - before
			total := fileSize(b, "long.mp4")
			if src.name == "hls" {
				total = hlsBytes
			}
			clip := float64(total) * 20 / 60
			b.ReportMetric(float64(sent)/clip, src.name+"-fetched/clip")
			b.Logf("%s: fetched %d bytes for a clip of %.0f bytes: %.3f×", src.name, sent, clip, float64(sent)/clip)
		}
	}
}

func eightHighlights(tag string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "name: %s\nprofile: {resolution: 1280x720, fps: 30}\nhighlights:\n", tag)
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&s, "  - {url: %s/long.mp4, at: %d, duration: 5, title: 'Highlight %d'}\n", mediaURL, 2+6*i, i+1)
	}
	return s.String()
}

// The same montage again, every segment from the cache, against the first
// run.
func BenchmarkCachedRerun(b *testing.B) {
	benchSources(b)
	c := startCoordinator(b, b.TempDir(), freePort(b))
	startAgent(b, c.url, b.TempDir())
	for i := 0; i < b.N; i++ {
		spec := eightHighlights(fmt.Sprintf("cache-%d-%d", i, time.Now().UnixNano()))
		// A new fade length per iteration makes new content keys.
		spec = strings.Replace(spec, "fps: 30}", fmt.Sprintf("fps: 30, fade: \"0.%d\"}", 1+i%9), 1)
		first := runJob(b, c.url, spec)
		again := runJob(b, c.url, spec)
		b.ReportMetric(first.Seconds(), "first-s")
		b.ReportMetric(again.Seconds(), "cached-s")
		b.ReportMetric(first.Seconds()/again.Seconds(), "speedup")
		b.Logf("first %v, cached rerun %v: %.1f× faster", first, again, first.Seconds()/again.Seconds())
	}
}

// Two agents, each pinned to its own core, against one such agent, on a
// montage of 8 highlights.
func BenchmarkTwoPinnedAgents(b *testing.B) {
	if _, err := exec.LookPath("taskset"); err != nil {
		b.Skip("taskset (util-linux) is needed to pin agents to cores")
	}
	benchSources(b)
	c := startCoordinator(b, b.TempDir(), freePort(b), "-cache-budget", "-1")
	pinned := func(core int) *proc {
		return start(b, "/usr/bin/taskset", "-c", fmt.Sprint(core), filepath.Join(binDir, "montage-agent"),
			"-coordinator", c.url, "-data-dir", b.TempDir(), "-slots", "1", "-name", fmt.Sprint("core", core))
	}
	for i := 0; i < b.N; i++ {
		a0 := pinned(0)
		one := runJob(b, c.url, eightHighlights("one"))
		a1 := pinned(1)
		waitFor(b, 30*time.Second, "the second agent", func() bool {
			return strings.Contains(ctl(b, c.url, "agents").stdout, "core1")
		})
		two := runJob(b, c.url, eightHighlights("two"))
		a1.kill(syscall.SIGTERM)
		a0.kill(syscall.SIGTERM)
		b.ReportMetric(one.Seconds(), "one-agent-s")
		b.ReportMetric(two.Seconds(), "two-agents-s")
		b.ReportMetric(one.Seconds()/two.Seconds(), "speedup")
		b.Logf("one pinned agent %v, two %v: %.2f×", one, two, one.Seconds()/two.Seconds())
	}
}

// The transcripts of an 8-highlight montage (5 s each, sidecar subtitles)
// by one transcribing agent and by two, one slot each, against a local
// OpenAI-compatible service that takes a second to answer: the time from
// submission until the last transcript is in, and the whole job's.
func BenchmarkTranscribeEightHighlights(b *testing.B) {
	benchSources(b)
	w := &whisper{t: b, delay: time.Second}
	srv := httptest.NewServer(w)
	b.Cleanup(srv.Close)
	env := []string{"OPENAI_API_KEY=" + openaiKey, "OPENAI_BASE_URL=" + srv.URL + "/v1"}
	c := startCoordinator(b, b.TempDir(), freePort(b), "-cache-budget", "-1")
	agent := func(name string) *proc {
		return startEnv(b, env, "montage-agent", "-coordinator", c.url, "-data-dir", b.TempDir(), "-slots", "1", "-name", name)
	}
	run := func(tag string) (transcripts, job time.Duration) {
		spec := strings.Replace(eightHighlights(tag), "highlights:", "transcribe: true\nsubtitles: sidecar\nhighlights:", 1)
		t0 := time.Now()
		r := ctl(b, c.url, "submit", "-q", writeSpec(b, spec))
		if r.code != 0 {
			b.Fatalf("submit: %s", r.stderr)
		}
		id := strings.TrimSpace(r.stdout)
		for job == 0 {
			j := getJob(b, c.url, id)
			done := 0
			for _, tk := range j.GetTasks() {
				if tk.GetType() == montagev1.TaskType_TASK_TYPE_TRANSCRIBE && tk.GetState() == montagev1.TaskState_TASK_STATE_SUCCEEDED {
					done++
				}
			}
			if done == 8 && transcripts == 0 {
				transcripts = time.Since(t0)
			}
			switch j.GetState() {
			case montagev1.JobState_JOB_STATE_SUCCEEDED:
				job = time.Since(t0)
			case montagev1.JobState_JOB_STATE_FAILED, montagev1.JobState_JOB_STATE_CANCELED:
				b.Fatalf("job %s: %s", j.GetState(), j.GetError())
			}
			time.Sleep(100 * time.Millisecond)
		}
		return transcripts, job
	}
	for i := 0; i < b.N; i++ {
		a0 := agent("tr0")
		waitFor(b, 30*time.Second, "the first agent", func() bool { return strings.Contains(ctl(b, c.url, "agents").stdout, "tr0") })
		oneT, oneJ := run(fmt.Sprintf("tr-one-%d", i))
		a1 := agent("tr1")
		waitFor(b, 30*time.Second, "the second agent", func() bool { return strings.Contains(ctl(b, c.url, "agents").stdout, "tr1") })
		twoT, twoJ := run(fmt.Sprintf("tr-two-%d", i))
		a1.kill(syscall.SIGTERM)
		a0.kill(syscall.SIGTERM)
		b.ReportMetric(oneT.Seconds(), "one-agent-transcripts-s")
		b.ReportMetric(twoT.Seconds(), "two-agents-transcripts-s")
		b.ReportMetric(oneJ.Seconds(), "one-agent-job-s")
		b.ReportMetric(twoJ.Seconds(), "two-agents-job-s")
		b.Logf("transcripts: one agent %v, two %v (%.2f×); whole job: one %v, two %v", oneT, twoT, oneT.Seconds()/twoT.Seconds(), oneJ, twoJ)
	}
}

// stream1080Long is a 150-s 1080p60 H.264 High source with 2-s GOPs at
// 6 Mb/s: what streaming platforms keep as VODs.
func stream1080Long(b *testing.B) {
	b.Helper()
	if _, err := os.Stat(filepath.Join(mediaDir, "vod1080p60.mp4")); err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tmp := filepath.Join(mediaDir, ".tmp-vod1080p60.mp4")
	out, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=60:duration=150",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=150,aformat=channel_layouts=stereo",
		"-c:v", "libx264", "-preset", "superfast", "-profile:v", "high", "-bf", "3", "-b-pyramid", "normal",
		"-g", "120", "-keyint_min", "120", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-b:v", "6M", "-maxrate", "6M", "-bufsize", "12M", "-c:a", "aac", "-b:a", "160k",
		"-movflags", "+faststart", tmp).CombinedOutput()
	if err != nil {
		b.Fatalf("generate the 1080p60 source: %v: %s", err, out)
	}
	if err := os.Rename(tmp, filepath.Join(mediaDir, "vod1080p60.mp4")); err != nil {
		b.Fatal(err)
	}
}

// Three 20-s highlights of a 150-s 1080p60 stream VOD into a 1080p60 H.264
// montage, with cut: exact, keyframe and smart (one agent, no cache): the
// wall time of each job and the montage's size, and how many times faster
// than exact the copying cuts are.
func BenchmarkCutModes1080p60(b *testing.B) {
	stream1080Long(b)
	c := startCoordinator(b, b.TempDir(), freePort(b), "-cache-budget", "-1")
	startAgent(b, c.url, b.TempDir())
	spec := func(name, cut string) string {
		return fmt.Sprintf("name: %s\nprofile: {resolution: 1920x1080, fps: 60, cut: %s}\nhighlights:\n"+
			"  - {url: %s/vod1080p60.mp4, at: 10.5, duration: 20}\n"+
			"  - {url: %s/vod1080p60.mp4, at: 61.3, duration: 20}\n"+
			"  - {url: %s/vod1080p60.mp4, at: 115.7, duration: 20}\n", name, cut, mediaURL, mediaURL, mediaURL)
	}
	for i := 0; i < b.N; i++ {
		secs := map[string]float64{}
		for _, cut := range []string{"exact", "keyframe", "smart"} {
			t0 := time.Now()
			r := ctl(b, c.url, "submit", "--wait", "-q", writeSpec(b, spec(fmt.Sprintf("%s-%d", cut, i), cut)))
			if r.code != 0 {
				b.Fatalf("%s job failed: %s %s", cut, r.stdout, r.stderr)
			}
			secs[cut] = time.Since(t0).Seconds()
			dir := b.TempDir()
			if d := ctl(b, c.url, "download", strings.TrimSpace(r.stdout), "-o", filepath.Join(dir, "montage.mp4")); d.code != 0 {
				b.Fatalf("download: %s", d.stderr)
			}
			st, err := os.Stat(filepath.Join(dir, "montage.mp4"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(secs[cut], cut+"-s")
			b.ReportMetric(float64(st.Size())/1e6, cut+"-MB")
			b.Logf("cut: %s took %.2f s for a %.1f MB montage", cut, secs[cut], float64(st.Size())/1e6)
		}
		b.ReportMetric(secs["exact"]/secs["keyframe"], "keyframe-speedup")
		b.ReportMetric(secs["exact"]/secs["smart"], "smart-speedup")
		b.Logf("keyframe %.1f× and smart %.1f× faster than exact", secs["exact"]/secs["keyframe"], secs["exact"]/secs["smart"])
	}
}

// A two-highlight montage on a farm of three agents (one slot each): two
// render, the third waits for work. With -concat-affinity 0 the waiting
// agent takes the concat and downloads both segments and encodes all the
// audio; by default the concat waits for an agent that kept its segments.
// Reported: the concat's time and the job's, each way.
func BenchmarkConcatAffinity(b *testing.B) {
	benchSources(b)
	spec := func(tag string) string {
		return fmt.Sprintf("name: %s\nprofile: {resolution: 1280x720, fps: 30}\nhighlights:\n"+
			"  - {url: %[2]s/long.mp4, at: 2, duration: 15}\n  - {url: %[2]s/long.mp4, at: 20, duration: 15}\n", tag, mediaURL)
	}
	done := regexp.MustCompile(`msg="task done" agent=\S+ task=(j[0-9a-f]+)-concat .*seconds=([0-9.]+)`)
	run := func(tag string, affinity string) (concat, job float64, local string) {
		c := startCoordinator(b, b.TempDir(), freePort(b), "-cache-budget", "-1", "-concat-affinity", affinity)
		var agents []*proc
		for range 3 {
			agents = append(agents, startAgent(b, c.url, b.TempDir()))
		}
		waitFor(b, 30*time.Second, "three agents registered", func() bool {
			return strings.Count(c.out.String(), "agent registered") >= 3
		})
		job = runJob(b, c.url, spec(tag)).Seconds()
		for _, a := range agents {
			if m := done.FindStringSubmatch(a.out.String()); m != nil {
				concat, _ = strconv.ParseFloat(m[2], 64)
				if l := regexp.MustCompile(`segments_ahead=(\d+) segments=\d+ segments_local=(\d+)`).FindStringSubmatch(a.out.String()); l != nil {
					local = l[2] + " local, " + l[1] + " encoded ahead"
				}
			}
			a.kill(syscall.SIGTERM)
		}
		c.kill(syscall.SIGTERM)
		return concat, job, local
	}
	for i := 0; i < b.N; i++ {
		offC, offJ, offL := run(fmt.Sprintf("off-%d", i), "0")
		onC, onJ, onL := run(fmt.Sprintf("on-%d", i), "3s")
		b.ReportMetric(offC, "concat-off-s")
		b.ReportMetric(onC, "concat-on-s")
		b.ReportMetric(offJ, "job-off-s")
		b.ReportMetric(onJ, "job-on-s")
		b.Logf("concat %.2f s (segments: %s) without affinity, %.2f s (%s) with; job %.2f s and %.2f s", offC, offL, onC, onL, offJ, onJ)
	}
}
