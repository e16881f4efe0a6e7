package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// HLS playlists are a known way to make ffmpeg read local files. A playlist
// whose segments point at file:// or use concat: fails its task, and
// nothing of the file reaches the job, its error or any object.
func TestMaliciousPlaylistsFailAndLeakNothing(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t), "-max-attempts", "1")
	agentDir := t.TempDir()
	startAgent(t, c.url, agentDir)
	playlists := map[string]string{
		"evil-file.m3u8":   "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
		"evil-concat.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nconcat:/etc/passwd|/etc/hostname\n#EXT-X-ENDLIST\n",
		// A real segment first, so the demuxer is already reading when the
		// local file comes.
		"evil-mixed.m3u8": fmt.Sprintf("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n%s/shls-000.ts\n#EXTINF:2.0,\nfile:///etc/passwd\n#EXTINF:2.0,\n%s/shls-001.ts\n#EXT-X-ENDLIST\n", mediaURL, mediaURL),
		"evil-key.m3u8":   fmt.Sprintf("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"file:///etc/passwd\"\n#EXTINF:2.0,\n%s/shls-000.ts\n#EXT-X-ENDLIST\n", mediaURL),
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.SplitN(string(passwd), "\n", 2)[0] // "root:x:0:0:root:/root:/bin/bash"
	for name, body := range playlists {
		if err := os.WriteFile(filepath.Join(mediaDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			spec := fmt.Sprintf("highlights:\n  - {url: %s/%s, at: 0, duration: 3}\n", mediaURL, name)
			r := ctl(t, c.url, "submit", "--wait", writeSpec(t, spec))
			if r.code != 2 {
				t.Fatalf("submit --wait exited %d, want 2 (job failed):\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			id := strings.Fields(r.stdout)[1]
			j := getJob(t, c.url, id)
			if len(j.GetOutputs()) != 0 {
				t.Errorf("a failed job has outputs %v", j.GetOutputs())
			}
			get := ctl(t, c.url, "get", id, "-o", "json")
			if strings.Contains(get.stdout, secret) || strings.Contains(j.GetError(), "root:") {
				t.Errorf("the job shows the local file's contents:\n%s", get.stdout)
			}
			mustContain(t, j.GetError(), "failed after 1 attempts", "job error")
		})
	}
	// Nothing the coordinator stores holds the file's bytes.
	grep := exec.Command("grep", "-rlF", secret, c.dataDir, agentDir)
	if out, _ := grep.Output(); len(out) > 0 {
		t.Errorf("files hold /etc/passwd's first line:\n%s", out)
	}
}

// A page URL goes to an agent with yt-dlp, which resolves it (here with its
// generic extractor on a local page, no internet needed) just before the
// cut. An agent without yt-dlp never gets the task; until one comes, the
// job says what it waits for.
func TestPageURLNeedsYTDLP(t *testing.T) {
	if _, err := exec.LookPath("yt-dlp"); err != nil {
		t.Fatal("yt-dlp is required for this test: apt-get install -y yt-dlp (make test installs it)")
	}
	page := fmt.Sprintf("<!DOCTYPE html><html><head><title>Stream VOD</title></head><body><video controls src=\"%s/s720.mp4\"></video></body></html>\n", mediaURL)
	if err := os.WriteFile(filepath.Join(mediaDir, "vod.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCoordinator(t, t.TempDir(), freePort(t))
	start(t, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-yt-dlp", "off", "-name", "no-ytdlp", "-poll-wait", "1s")
	spec := fmt.Sprintf("profile: {resolution: 640x360, fps: 30}\nhighlights:\n  - {url: %s/vod.html, at: 3, duration: 4, title: From a page}\n  - {url: %s/a.mp4, at: 1, duration: 2}\n", mediaURL, mediaURL)
	r := ctl(t, c.url, "submit", "-q", writeSpec(t, spec))
	if r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	waitFor(t, time.Minute, "the plain file's render to finish", func() bool {
		j := getJob(t, c.url, id)
		return j.GetTasks()[1].GetState() == montagev1.TaskState_TASK_STATE_SUCCEEDED
	})
	c.waitPolls(t, 2) // evaluations of lease polls begun after the render: nothing granted
	j := getJob(t, c.url, id)
	if page := j.GetTasks()[0]; page.GetState() != montagev1.TaskState_TASK_STATE_QUEUED || page.GetAttempts() != 0 {
		t.Fatalf("page task is %s after %d attempts; an agent without yt-dlp must never get it", page.GetState(), page.GetAttempts())
	}
	get := ctl(t, c.url, "get", id)
	mustContain(t, get.stdout, "Waiting:  waiting for an agent with yt-dlp", "montagectl get")

	start(t, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-name", "with-ytdlp")
	j = waitJobDone(t, c.url, id, 2*time.Minute)
	if j.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", j.GetState(), j.GetError())
	}
	if j.GetWaitingFor() != "" {
		t.Errorf("a finished job still waits: %q", j.GetWaitingFor())
	}
	dir := t.TempDir()
	if r := ctl(t, c.url, "download", id, "--what", "all", "-o", dir); r.code != 0 {
		t.Fatalf("download: %s", r.stderr)
	}
	checkMontage(t, filepath.Join(dir, "montage.mp4"), []float64{4, 2}, 640, 360, "30/1")
	man, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	// yt-dlp's generic extractor names the way it found the media ("html5").
	mustContain(t, string(man), `"extractor": "`, "manifest")
	mustContain(t, string(man), `"width": 1280`, "manifest")
}

// A job that forces a hardware family on a CPU-only farm waits and says so;
// the agent, which proved no hardware encoder, never gets its tasks. With
// hwaccel auto the same farm renders with libx264.
func TestHardwareEncoderTasksWaitForSuchAnAgent(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))
	start(t, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-log-level", "debug", "-poll-wait", "1s")
	spec := fmt.Sprintf("profile: {resolution: 640x360, fps: 30, hwaccel: nvenc}\nhighlights:\n  - {url: %s/a.mp4, at: 1, duration: 2}\n", mediaURL)
	r := ctl(t, c.url, "submit", "-q", writeSpec(t, spec))
	if r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	waitFor(t, 30*time.Second, "the agent to register", func() bool {
		return strings.Contains(ctl(t, c.url, "agents").stdout, "libx264")
	})
	c.waitPolls(t, 2) // lease polls evaluated after the submit: nothing granted
	j := getJob(t, c.url, id)
	if j.GetState() != montagev1.JobState_JOB_STATE_QUEUED || j.GetTasks()[0].GetAttempts() != 0 {
		t.Fatalf("job %s, render attempts %d: a CPU agent must not take an NVENC task", j.GetState(), j.GetTasks()[0].GetAttempts())
	}
	get := ctl(t, c.url, "get", id)
	mustContain(t, get.stdout, "Encoder:  h264_nvenc", "montagectl get")
	mustContain(t, get.stdout, "Waiting:  waiting for an agent whose h264_nvenc encoder works", "montagectl get")
	if r := ctl(t, c.url, "cancel", id); r.code != 0 {
		t.Fatalf("cancel: %s", r.stderr)
	}
	auto := strings.Replace(spec, "hwaccel: nvenc", "hwaccel: auto", 1)
	r = ctl(t, c.url, "submit", "--wait", "-q", writeSpec(t, auto))
	if r.code != 0 {
		t.Fatalf("auto job: %s %s", r.stdout, r.stderr)
	}
	get = ctl(t, c.url, "get", strings.TrimSpace(r.stdout))
	mustContain(t, get.stdout, "Encoder:  libx264", "montagectl get")
}
