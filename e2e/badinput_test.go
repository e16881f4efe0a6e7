package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func jobCount(t *testing.T, url string) int {
	t.Helper()
	r, err := jobsClient(url).ListJobs(context.Background(), connect.NewRequest(&montagev1.ListJobsRequest{Limit: 10000}))
	if err != nil {
		t.Fatal(err)
	}
	return len(r.Msg.GetJobs())
}

// Invalid specs are refused with InvalidArgument naming the field, and
// change nothing.
func TestInvalidSpecsRejected(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))
	before := jobCount(t, c.url)
	many := strings.Repeat(fmt.Sprintf("  - {url: %s/a.mp4, at: 1, duration: 2}\n", mediaURL), 501)
	cases := []struct {
		name, spec, want string
	}{
		{"no highlights", "name: empty\nhighlights: []\n", "InvalidArgument: highlights: must list at least one highlight"},
		{"negative duration", fmt.Sprintf("highlights:\n  - {url: %s/a.mp4, at: 1, duration: -5}\n", mediaURL), "InvalidArgument: highlights[0].duration:"},
		{"unparsable timestamp", fmt.Sprintf("highlights:\n  - {url: %s/a.mp4, at: 1, duration: 2}\n  - {url: %s/a.mp4, at: 'ten past', duration: 2}\n", mediaURL, mediaURL), "InvalidArgument: highlights[1].at:"},
		{"unsupported scheme", "highlights:\n  - {url: 'file:///etc/passwd', at: 1, duration: 2}\n", "InvalidArgument: highlights[0].url: scheme \"file\" is not supported"},
		{"ftp scheme", "highlights:\n  - {url: 'ftp://example.com/v.mp4', at: 1}\n", "InvalidArgument: highlights[0].url: scheme \"ftp\" is not supported"},
		{"concat scheme", "highlights:\n  - {url: 'concat:/etc/passwd|/etc/hosts', at: 1}\n", "InvalidArgument: highlights[0].url: scheme \"concat\" is not supported"},
		{"data scheme", "highlights:\n  - {url: 'data:video/mp4;base64,AAAA', at: 1}\n", "InvalidArgument: highlights[0].url: scheme \"data\" is not supported"},
		{"s3 on the local store", "highlights:\n  - {url: 's3://vods/a.mp4', at: 1}\n", "InvalidArgument: highlights[0].url: s3:// sources need a coordinator with an S3 store"},
		{"intro scheme", fmt.Sprintf("intro: {url: 'file:///intro.mp4'}\nhighlights:\n  - {url: %s/a.mp4, at: 1}\n", mediaURL), "InvalidArgument: intro.url: scheme \"file\""},
		{"bad hwaccel", fmt.Sprintf("profile: {hwaccel: cuda}\nhighlights:\n  - {url: %s/a.mp4, at: 1}\n", mediaURL), "InvalidArgument: profile.hwaccel:"},
		{"too many highlights", "highlights:\n" + many, "InvalidArgument: highlights: has 501 entries; the limit is 500"},
		{"too long", fmt.Sprintf("highlights:\n  - {url: %s/a.mp4, at: 1, duration: 601}\n", mediaURL), "InvalidArgument: highlights[0].duration: must be between 1 and 600 seconds"},
		{"bad resolution", fmt.Sprintf("profile: {resolution: 641x360}\nhighlights:\n  - {url: %s/a.mp4, at: 1}\n", mediaURL), "InvalidArgument: profile.resolution:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ctl(t, c.url, "submit", writeSpec(t, tc.spec))
			if r.code == 0 {
				t.Fatalf("submit succeeded; want refusal %q", tc.want)
			}
			mustContain(t, r.stderr, tc.want, "montagectl stderr")
		})
	}
	// A spec over 1 MiB: montagectl refuses it locally, and the server
	// refuses it too when a client sends one.
	big := fmt.Sprintf("name: %s\nhighlights:\n  - {url: %s/a.mp4, at: 1}\n", strings.Repeat("x", 1<<20), mediaURL)
	r := ctl(t, c.url, "submit", writeSpec(t, big))
	mustContain(t, r.stderr, "spec: file is", "montagectl stderr for a 1 MiB spec")
	hs := make([]*montagev1.Highlight, 400)
	for i := range hs {
		hs[i] = &montagev1.Highlight{Url: mediaURL + "/a.mp4?" + strings.Repeat("q", 3000), At: "1", Title: strings.Repeat("t", 100)}
	}
	_, err := jobsClient(c.url).SubmitJob(context.Background(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: &montagev1.JobSpec{Highlights: hs}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "spec: is") {
		t.Errorf("1.2 MiB spec over the API: got %v, want InvalidArgument naming spec", err)
	}
	if after := jobCount(t, c.url); after != before {
		t.Errorf("rejected submissions changed the job list: %d jobs before, %d after", before, after)
	}
}

// An unreachable source and a non-video source fail their tasks after all
// attempts; the job fails cleanly and the ffmpeg error shows in montagectl get.
func TestBadSourcesFailTheJob(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t), "-max-attempts", "2")
	startAgent(t, c.url, t.TempDir())
	for _, tc := range []struct {
		name, url, want string
	}{
		// The error names the user's URL and the real cause, not the agent's
		// range proxy and its 502.
		{"unreachable", "http://127.0.0.1:9/missing.mp4", "source http://127.0.0.1:9/missing.mp4: dial tcp 127.0.0.1:9: connect: connection refused"},
		{"not a video", mediaURL + "/notvideo.mp4", "Invalid data found when processing input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := fmt.Sprintf("highlights:\n  - {url: %s/a.mp4, at: 1, duration: 1}\n  - {url: '%s', at: 1, duration: 2}\n", mediaURL, tc.url)
			r := ctl(t, c.url, "submit", "--wait", writeSpec(t, spec))
			if r.code != 2 {
				t.Fatalf("submit --wait exited %d, want 2 (job failed):\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			id := strings.Fields(r.stdout)[1]
			get := ctl(t, c.url, "get", id)
			mustContain(t, get.stdout, "State:    failed", "montagectl get")
			mustContain(t, get.stdout, tc.want, "montagectl get")
			mustContain(t, get.stdout, "failed after 2 attempts", "montagectl get")
			if proxyURL := regexp.MustCompile(`127\.0\.0\.1:\d+/[0-9a-f]{32}/`).FindString(get.stdout); proxyURL != "" {
				t.Errorf("the error shows the agent's internal proxy URL %s:\n%s", proxyURL, get.stdout)
			}
			j := getJob(t, c.url, id)
			for _, task := range j.GetTasks() {
				if task.GetState() == montagev1.TaskState_TASK_STATE_LEASED || task.GetState() == montagev1.TaskState_TASK_STATE_QUEUED {
					t.Errorf("task %s left %s in a failed job", task.GetId(), task.GetState())
				}
			}
		})
	}
	// The farm still works after failures.
	r := ctl(t, c.url, "submit", "--wait", writeSpec(t, fmt.Sprintf("highlights: [{url: %s/a.mp4, at: 1, duration: 1}]\n", mediaURL)))
	if r.code != 0 {
		t.Fatalf("good job after bad ones: %s", r.stderr)
	}
}

// A cluster of coordinators refuses the local object store and says why.
func TestClusterRefusesLocalStore(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "montage-coordinator"), "-data-dir", t.TempDir(),
		"-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-bootstrap-expect", "3")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "a cluster of coordinators needs the S3 object store") {
		t.Errorf("exit %v, output %q", err, out)
	}
}
