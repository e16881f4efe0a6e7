package sources

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// IdentityOf is what a response says about which bytes the server has: its
// ETag, Last-Modified and size (the total of a Content-Range, or the
// Content-Length of a whole answer). A source re-uploaded at the same URL
// shows another identity, so the segment cache does not serve stale
// renders of it. "" when the response says nothing of the kind.
func IdentityOf(resp *http.Response) string {
	var parts []string
	if v := resp.Header.Get("ETag"); v != "" {
		parts = append(parts, "etag="+v)
	}
	if v := resp.Header.Get("Last-Modified"); v != "" {
		parts = append(parts, "modified="+v)
	}
	size := int64(-1)
	if resp.StatusCode == http.StatusPartialContent {
		if n, ok := ParseContentRange(resp.Header.Get("Content-Range")); ok {
			size = n
		}
	} else if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 {
		size = resp.ContentLength
	}
	if size >= 0 {
		parts = append(parts, "size="+strconv.FormatInt(size, 10))
	}
	return strings.Join(parts, "; ")
}

// Probe asks a source for its identity with a one-byte range request
// through client (the egress-checked source client).
func Probe(ctx context.Context, client *http.Client, url string, headers map[string]string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Range", "bytes=0-0")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", withoutQuery(url), unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPlaylist))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return "", fmt.Errorf("source %s: the server answered %s", withoutQuery(url), resp.Status)
	}
	return IdentityOf(resp), nil
}
