package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// browser is a headless chromium page for one test, collecting what the
// page logs as errors (console.error, uncaught exceptions).
type browser struct {
	t      testing.TB
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func chromiumPath(t testing.TB) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is required for the console tests: apt-get install -y chromium (make ci installs it)")
	return ""
}

func newBrowser(t *testing.T) *browser { return newBrowserTB(t) }

func newBrowserTB(t testing.TB) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox,
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 9*time.Minute)
	t.Cleanup(func() { cancelT(); cancel(); cancelA() })
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console.error: "+strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, "exception: "+e.ExceptionDetails.Text+describeException(e.ExceptionDetails))
		}
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failure")
		b.t.Fatalf("browser: %v", err)
	}
}

// eval runs JavaScript (awaiting a promise) and returns its value.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.shot("failure")
		b.t.Fatalf("browser: %s: %v", js, err)
	}
	return v
}

// until polls a JavaScript condition until it is true.
func (b *browser) until(what, js string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("timeout")
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById('app').innerText`))
			b.t.Fatalf("timed out after %s waiting for %s; the page shows:\n%s", timeout, what, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shot saves a screenshot for people to look at, beside the test's logs.
func (b *browser) shot(name string) {
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return
	}
	dir := filepath.Join(os.TempDir(), "montage-console-screenshots")
	_ = os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, fmt.Sprintf("%s-%s.png", b.t.Name(), name))
	if os.WriteFile(p, png, 0o644) == nil {
		b.t.Logf("screenshot: %s", p)
	}
}

func (b *browser) noErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("the page logged errors:\n%s", strings.Join(b.errors, "\n"))
	}
}

// On a dev farm: submit through the form, watch every task reach 100 %
// and the job succeed without a reload, open the montage, play it, click
// the third chapter and land at its start; cancel a second job; a bad
// spec's field error shows at its field.
func TestConsoleSubmitWatchPlay(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t), "-dev")
	b := newBrowser(t)
	b.run(chromedp.Navigate(c.url + "/ui/#/submit"))
	b.until("the submit form", `!!document.querySelector('#spec-form')`, 20*time.Second)
	// Three highlights through the form (one row is there; add two).
	b.run(chromedp.Click(chromedp.CSS(`#spec-form button[type=button]`)), chromedp.Click(chromedp.CSS(`#spec-form button[type=button]`)))
	set := func(sel, v string) chromedp.Action[chromedp.Void] { return chromedp.SetValue(chromedp.CSS(sel), v) }
	b.run(set(`input[name=name]`, "Console montage"), set(`input[name="profile.resolution"]`, "320x180"), set(`input[name="profile.fps"]`, "25"))
	for i, at := range []string{"1", "5", "9"} {
		b.run(set(fmt.Sprintf(`input[name="highlights[%d].url"]`, i), mediaURL+"/a.mp4"), set(fmt.Sprintf(`input[name="highlights[%d].at"]`, i), at),
			set(fmt.Sprintf(`input[name="highlights[%d].duration"]`, i), "2"), set(fmt.Sprintf(`input[name="highlights[%d].title"]`, i), fmt.Sprintf("Chapter %d", i+1)))
	}
	// A bad duration first: the server's error lands at that field.
	b.run(set(`input[name="highlights[1].duration"]`, "900"), chromedp.Click(chromedp.CSS(`#submit-form`)))
	b.until("the field error", `(document.querySelector('[data-error-for="highlights[1].duration"]')||{}).textContent.includes('between 1 and 600')`, 20*time.Second)
	b.shot("field-error")
	b.run(set(`input[name="highlights[1].duration"]`, "2"), chromedp.Click(chromedp.CSS(`#submit-form`)))
	b.until("the job page", `location.hash.startsWith('#/job/')`, 20*time.Second)
	id := eval[string](b, `location.hash.slice(6)`)
	t.Logf("job %s submitted through the form", id)
	// Live: the page is never reloaded; the stream moves it to succeeded.
	eval[bool](b, `window.__sameDocument = true`)
	b.until("the job to succeed with every task at 100%", `document.querySelector('#job-state')?.textContent === 'succeeded' &&
		[...document.querySelectorAll('tr[data-task]')].length >= 4 &&
		[...document.querySelectorAll('tr[data-task]')].every(r => r.dataset.state === 'succeeded' && r.querySelector('progress').value === 100)`, 3*time.Minute)
	if !eval[bool](b, `window.__sameDocument === true`) {
		t.Error("the job page reloaded on its way to success")
	}
	b.shot("job-succeeded")
	b.run(chromedp.Click(chromedp.CSS(`a[href^="#/montage/"]`)))
	b.until("the player with three chapters", `!!document.querySelector('#player') && document.querySelectorAll('#chapters button').length === 3`, 30*time.Second)
	eval[bool](b, `(async () => { const v = document.querySelector('#player'); v.muted = true; await v.play(); return true; })()`)
	b.until("playback", `document.querySelector('#player').currentTime > 0.3`, 30*time.Second)
	start := eval[float64](b, `Number(document.querySelectorAll('#chapters button')[2].dataset.start)`)
	if start < 3.5 {
		t.Fatalf("the third chapter starts at %v s; two 2-s highlights come before it", start)
	}
	b.run(chromedp.Click(chromedp.CSS(`#chapters li:nth-child(3) button`)))
	b.until("the jump to the third chapter", fmt.Sprintf(`Math.abs(document.querySelector('#player').currentTime - %f) < 0.6`, start), 10*time.Second)
	b.shot("montage")
	// On a phone: the player and chapters fit the width, nothing scrolls sideways.
	b.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	b.until("the montage page to fit a phone", `document.documentElement.scrollWidth <= window.innerWidth + 1 &&
		document.querySelector('#player').getBoundingClientRect().width <= window.innerWidth`, 10*time.Second)
	b.shot("montage-phone")
	b.run(chromedp.EmulateReset())
	share := eval[string](b, `document.querySelector('#share').value`)
	if resp, err := http.Get(share); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the share link %q: %v %v", share, err, resp)
	} else {
		resp.Body.Close()
	}

	// A second, long job, pasted as YAML: cancel it from its page.
	b.run(chromedp.Navigate(c.url+"/ui/#/submit"), chromedp.WaitVisible(chromedp.CSS(`#spec-text`)),
		set(`#spec-text`, "# pasted as YAML\nname: \"long: to cancel\"\nprofile: {resolution: 320x180, fps: 25}  # small\nhighlights:\n"+
			"  - {url: "+mediaURL+"/a.mp4, at: 1, duration: 15, title: 'One, quoted'}\n  - url: "+mediaURL+"/a.mp4\n    at: \"0:02\"\n    duration: 15\n"+
			strings.Repeat("  - {url: "+mediaURL+"/a.mp4, at: 1, duration: 15}\n", 4)),
		chromedp.Click(chromedp.CSS(`#submit-paste`)))
	b.until("the pasted job's page", `location.hash.startsWith('#/job/')`, 20*time.Second)
	b.until("the cancel button", `!!document.querySelector('#cancel')`, 20*time.Second)
	b.run(chromedp.Click(chromedp.CSS(`#cancel`)))
	b.until("the job canceled", `document.querySelector('#job-state')?.textContent === 'canceled'`, 30*time.Second)
	// What the page read from the YAML is what the job holds.
	pastedID := eval[string](b, `location.hash.slice(6)`)
	js := getJob(t, c.url, pastedID).GetSpec()
	if hs := js.GetHighlights(); js.GetName() != "long: to cancel" || js.GetProfile().GetFps() != 25 || len(hs) != 6 ||
		hs[0].GetTitle() != "One, quoted" || hs[1].GetAt() != "0:02" || hs[1].GetDuration() != "15" || hs[5].GetAt() != "1" {
		t.Errorf("the pasted YAML became %v", js)
	}

	// A malformed spec pasted: the error shows at the spec.
	b.run(chromedp.Navigate(c.url+"/ui/#/submit"), chromedp.WaitVisible(chromedp.CSS(`#spec-text`)),
		set(`#spec-text`, `{"highlights":[{"url":"file:///etc/passwd","at":"1","duration":"2"}]}`), chromedp.Click(chromedp.CSS(`#submit-paste`)))
	b.until("the pasted spec's error", `(document.querySelector('[data-error-for="spec"]')||{}).textContent.includes('highlights[0].url')`, 20*time.Second)
	// The Farm page lists both jobs.
	b.run(chromedp.Navigate(c.url + "/ui/#/"))
	b.until("the farm page", `document.querySelectorAll('tr[data-job]').length === 2`, 20*time.Second)
	b.shot("farm")
	b.noErrors()
}

// Without -dev the console asks for a token: the cookie it gets is
// HttpOnly; a viewer sees jobs but cannot submit; a cookie without the
// Connect header (a cross-site form) is refused; the operator can submit.
func TestConsoleSignInAndViewer(t *testing.T) {
	const op, join, viewer = "operator-token-0123456789abcdef", "join-token-0123456789abcdefgh", "viewer-token-0123456789abcdef"
	c := startCoordinatorEnv(t, []string{"MONTAGE_OPERATOR_TOKEN=" + op, "MONTAGE_AGENT_JOIN_TOKEN=" + join, "MONTAGE_VIEWER_TOKEN=" + viewer},
		t.TempDir(), freePort(t))
	b := newBrowser(t)
	b.run(chromedp.Navigate(c.url + "/ui/"))
	b.until("the sign-in form", `!!document.querySelector('#signin')`, 20*time.Second)
	b.run(chromedp.SetValue(chromedp.CSS(`#token`), "wrong-token-0123456789abcdef"), chromedp.Click(chromedp.CSS(`#signin button`)))
	b.until("a refusal", `document.querySelector('[role=alert]')?.textContent.includes('neither')`, 20*time.Second)
	b.run(chromedp.SetValue(chromedp.CSS(`#token`), viewer), chromedp.Click(chromedp.CSS(`#signin button`)))
	b.until("the farm as a viewer", `document.querySelector('#who')?.textContent.includes('viewer') && !!document.querySelector('table.jobs')`, 20*time.Second)
	cookieVisible := eval[bool](b, `document.cookie.includes('montage_session')`)
	submitShown := eval[bool](b, `!document.querySelector('a[href="#/submit"]').hidden`)
	if cookieVisible || submitShown {
		t.Errorf("viewer: cookie visible to scripts %v, submit offered %v", cookieVisible, submitShown)
	}
	code := eval[string](b, `fetch('/montage.v1.JobService/SubmitJob', {method:'POST', headers:{'Content-Type':'application/json','Connect-Protocol-Version':'1'},
		body: JSON.stringify({spec:{highlights:[{url:'http://127.0.0.1:9/v.mp4', at:'1', duration:'1'}]}})}).then(r => r.json()).then(j => j.code)`)
	if code != "permission_denied" {
		t.Errorf("a viewer's submit: %q, want permission_denied", code)
	}
	b.shot("viewer")
	// The session cookie alone, without the Connect header, is refused.
	req, _ := http.NewRequest(http.MethodPost, c.url+"/montage.v1.JobService/ListJobs", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: "montage_session", Value: viewer})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a cookie without the Connect header: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// Sign out, then in as the operator: Submit is there.
	b.run(chromedp.Click(chromedp.CSS(`#who button`)))
	b.until("the sign-in form again", `!!document.querySelector('#signin')`, 20*time.Second)
	b.run(chromedp.SetValue(chromedp.CSS(`#token`), op), chromedp.Click(chromedp.CSS(`#signin button`)))
	b.until("the operator's farm", `document.querySelector('#who')?.textContent.includes('operator') && !document.querySelector('a[href="#/submit"]').hidden`, 20*time.Second)
	b.noErrors()
}

func describeException(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return " " + d.Exception.Description
	}
	return ""
}

// The Farm page of a farm holding 10,000 jobs: from navigation to the
// first page of 50 rows on screen. Aim: under 300 ms.
func BenchmarkConsoleFarm10k(b *testing.B) {
	c := startCoordinator(b, b.TempDir(), freePort(b), "-max-queued-jobs", "20000")
	jobs := jobsClient(c.url)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 10_000; i += 8 {
				s := &montagev1.JobSpec{Name: fmt.Sprint("bench ", i), Highlights: []*montagev1.Highlight{{Url: "http://127.0.0.1:9/v.mp4", At: "1", Duration: "5"}}}
				if _, err := jobs.SubmitJob(context.Background(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: s})); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	br := newBrowserTB(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := chromedp.Do(br.ctx, chromedp.Navigate(c.url+"/ui/?load="+fmt.Sprint(i)+"#/")); err != nil {
			b.Fatal(err)
		}
		for {
			n, err := chromedp.Run(br.ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-job]').length`))
			if err == nil && n == 50 {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("the farm page did not list 50 jobs: %d %v", n, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		total += time.Since(t0)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/page")
}
