package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progressFunc reports bytes done of total (total < 0 when unknown).
type progressFunc func(done, total int64)

// progress draws a download bar on a terminal and nothing elsewhere.
func (a *app) progress(name string) func() (progressFunc, func()) {
	return func() (progressFunc, func()) {
		if !isTerminal(a.errOut) {
			return func(int64, int64) {}, func() {}
		}
		p := mpb.New(mpb.WithOutput(a.errOut), mpb.WithWidth(40))
		var bar *mpb.Bar
		return func(done, total int64) {
				if bar == nil {
					bar = p.AddBar(total, mpb.PrependDecorators(decor.Name(name, decor.WC{W: 12})),
						mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Percentage(decor.WC{W: 6})))
				}
				bar.SetCurrent(done)
			}, func() {
				if bar != nil {
					bar.Abort(false)
				}
				p.Wait()
			}
	}
}

// fetch downloads url into path through path+".part". A .part left by a
// broken download is resumed with a range request; the final name appears
// only when every byte is there.
func fetch(ctx context.Context, client *http.Client, url, path string, mkProgress func() (progressFunc, func())) (int64, error) {
	tmp := path + ".part"
	var have int64
	if st, err := os.Stat(tmp); err == nil {
		have = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	total := int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		flags |= os.O_APPEND
		if _, size, ok := strings.Cut(resp.Header.Get("Content-Range"), "/"); ok {
			total, _ = strconv.ParseInt(size, 10, 64)
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// The .part is already whole (or stale): start over.
		os.Remove(tmp)
		return fetch(ctx, client, url, path, mkProgress)
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC
		have = 0
		total = resp.ContentLength
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("download: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	f, err := os.OpenFile(tmp, flags, 0o644)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	report, done := mkProgress()
	defer done()
	w := &counter{w: f, n: have, total: total, report: report}
	_, err = io.Copy(w, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("download interrupted at %d bytes (run the same command again to resume): %w", w.n, err)
	}
	if total >= 0 && w.n != total {
		return 0, fmt.Errorf("download: got %d of %d bytes (run the same command again to resume)", w.n, total)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	return w.n, nil
}

type counter struct {
	w      io.Writer
	n      int64
	total  int64
	report progressFunc
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.report(c.n, c.total)
	return n, err
}

// verifyFile checks a downloaded file against the size and SHA-256 the
// coordinator accepted; an empty sum (an older coordinator) checks nothing.
func verifyFile(path string, size int64, sum string) error {
	if sum == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(sum) || size > 0 && n != size {
		return fmt.Errorf("got %d bytes with SHA-256 %s, but the farm accepted %d bytes with %s", n, got, size, sum)
	}
	return nil
}
