package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/testmedia"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// The README's sample address: examples/ point at `make demo`'s sample VODs.
const examplesSampleURL = "http://127.0.0.1:7480"

// Every spec in examples/ goes through `montagectl submit --wait` on a dev
// farm the way people run it: first in a real terminal (tmux), where the
// progress bars render, then with its output piped. Each exits 0 and never
// shows a panic; the terminal ends with a bar per task (intro and outro
// included) at 100 %. On the finished full example the other commands a
// person runs next work too.
func TestEveryExampleThroughMontagectl(t *testing.T) {
	tm := newTmux(t)
	samples := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := testmedia.GenerateAll(ctx, samples, testmedia.Samples(30)); err != nil {
		t.Fatal(err)
	}
	srv, err := testmedia.Serve(samples, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	specDir := t.TempDir()
	// Concats with more than two inputs read them from an object: the
	// path a long montage takes, here on every example.
	c := startCoordinator(t, t.TempDir(), freePort(t), "-dev", "-inline-concat-inputs", "2")
	var full string
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), examplesSampleURL) {
			t.Fatalf("%s does not use the sample VODs at %s; this test cannot serve what it needs", f, examplesSampleURL)
		}
		spec := filepath.Join(specDir, filepath.Base(f))
		if err := os.WriteFile(spec, []byte(strings.ReplaceAll(string(body), examplesSampleURL, srv.URL)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			// In a terminal: bars.
			screen, code := tm.run(t, 5*time.Minute, filepath.Join(binDir, "montagectl"), "--addr", c.url, "submit", spec, "--wait")
			noPanic(t, screen, "terminal")
			if code != 0 {
				t.Fatalf("submit --wait in a terminal exited %d; screen:\n%s", code, screen)
			}
			m := regexp.MustCompile(`job (\S+) submitted`).FindStringSubmatch(screen)
			if m == nil {
				t.Fatalf("no job id on the screen:\n%s", screen)
			}
			j := getJob(t, c.url, m[1])
			checkBars(t, screen, j)

			// Piped: one line per change, the same exit code.
			res := ctl(t, c.url, "submit", spec, "--wait")
			noPanic(t, res.stdout+res.stderr, "piped output")
			if res.code != 0 {
				t.Fatalf("submit --wait piped exited %d:\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			for _, task := range getJob(t, c.url, strings.Fields(res.stdout)[1]).GetTasks() {
				if r := task.GetRole(); r == "intro" || r == "outro" {
					mustContain(t, res.stderr, "  "+r+": succeeded", "piped progress")
				}
			}
			if filepath.Base(f) == "full.yaml" {
				full = m[1]
			}
		})
	}
	if full == "" {
		t.Fatal("examples/full.yaml did not run")
	}

	// What a person runs next, on the finished full example.
	get := ctl(t, c.url, "get", full)
	for _, want := range []string{"succeeded", "intro", "outro", "concat", `highlight 1 "Opening play" part 2/2`} {
		mustContain(t, get.stdout, want, "montagectl get")
	}
	dir := t.TempDir()
	for _, args := range [][]string{{"get", full}, {"get", full, "-o", "json"}, {"list"}, {"agents"}, {"cluster", "status"},
		{"download", full, "--what", "all", "-o", dir}} {
		r := ctl(t, c.url, args...)
		noPanic(t, r.stdout+r.stderr, "montagectl "+strings.Join(args, " "))
		if r.code != 0 || strings.TrimSpace(r.stdout) == "" {
			t.Errorf("montagectl %s exited %d with output %q:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	for _, name := range []string{"montage.mp4", "chapters.txt", "thumbnail.jpg", "manifest.json"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("download --what all: %s missing or empty (%v)", name, err)
		}
	}
	if p := ffprobe(t, filepath.Join(dir, "montage.mp4")); len(p.Chapters) != 4 {
		t.Errorf("full example has %d chapters, want 4 (intro, two highlights, outro)", len(p.Chapters))
	}
}

func noPanic(t *testing.T, s, what string) {
	t.Helper()
	if strings.Contains(s, "panic") || strings.Contains(s, "goroutine") {
		t.Errorf("%s shows a panic:\n%s", what, s)
	}
}

// checkBars finds, for every task of the job and for the job itself, a
// line of the final screen with its label and 100 %.
func checkBars(t *testing.T, screen string, j *montagev1.Job) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	find := func(label *regexp.Regexp) bool {
		for _, l := range lines {
			if label.MatchString(l) && strings.Contains(l, "100 %") {
				return true
			}
		}
		return false
	}
	roles := map[string]bool{}
	for _, task := range j.GetTasks() {
		var label string
		switch {
		case task.GetType() == montagev1.TaskType_TASK_TYPE_CONCAT:
			label = "concat"
		case task.GetRole() == "intro" || task.GetRole() == "outro":
			label = task.GetRole()
		default:
			label = fmt.Sprintf(`highlight %d( "[^"]*")?`, task.GetHighlightIndex()+1)
			if task.GetChunks() > 1 {
				label += fmt.Sprintf(" part %d/%d", task.GetChunk()+1, task.GetChunks())
			}
		}
		roles[task.GetRole()] = true
		if !find(regexp.MustCompile(`^\s*` + label + `\s`)) {
			t.Errorf("no bar at 100 %% for %s (%s) on the screen:\n%s", task.GetId(), label, screen)
		}
	}
	if !find(regexp.MustCompile(`^\s*job ` + regexp.QuoteMeta(j.GetId()))) {
		t.Errorf("no job bar at 100 %% on the screen:\n%s", screen)
	}
	t.Logf("bars for %d tasks (roles %v) at 100 %%:\n%s", len(j.GetTasks()), roles, strings.TrimRight(screen, "\n"))
}

// tmux runs commands in a real pseudo-terminal and reads back its screen.
type tmux struct {
	socket string
	n      int
}

func newTmux(t *testing.T) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is required for terminal tests: apt-get install -y tmux (or run `make test`, which installs it)")
	}
	dir, err := os.MkdirTemp("", "tmux") // short: socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	tm := &tmux{socket: filepath.Join(dir, "s")}
	t.Cleanup(func() {
		_ = tm.cmd("kill-server").Run()
		os.RemoveAll(dir)
	})
	return tm
}

func (tm *tmux) cmd(args ...string) *exec.Cmd {
	c := exec.Command("tmux", append([]string{"-S", tm.socket, "-f", "/dev/null"}, args...)...)
	c.Env = append(os.Environ(), "TERM=xterm-256color")
	return c
}

// run starts argv in a fresh 200x60 window and waits for it to exit,
// returning the final screen (without the exit marker) and the exit code.
func (tm *tmux) run(t *testing.T, timeout time.Duration, argv ...string) (string, int) {
	t.Helper()
	tm.n++
	session := fmt.Sprintf("w%d", tm.n)
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	// The shell keeps the window open after the command so its last screen
	// can be read; the marker carries the exit code.
	script := strings.Join(quoted, " ") + `; echo "MONTAGE-EXIT:$?"; sleep 3600`
	if out, err := tm.cmd("new-session", "-d", "-s", session, "-x", "200", "-y", "60", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	defer func() { _ = tm.cmd("kill-session", "-t", session).Run() }()
	exit := regexp.MustCompile(`MONTAGE-EXIT:(\d+)`)
	var screen string
	var code int
	waitFor(t, timeout, "command in tmux to exit", func() bool {
		out, err := tm.cmd("capture-pane", "-p", "-t", session).Output()
		if err != nil {
			return false
		}
		screen = string(out)
		m := exit.FindStringSubmatch(screen)
		if m == nil {
			return false
		}
		fmt.Sscan(m[1], &code)
		screen = screen[:strings.Index(screen, m[0])]
		return true
	})
	return screen, code
}
