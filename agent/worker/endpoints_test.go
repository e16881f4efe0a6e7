package worker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestEndpointsFailOver(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "electing", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	}))
	defer good.Close()
	e, err := newEndpoints([]string{deadURL, busy.URL}, http.DefaultTransport)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.add([]string{good.URL, busy.URL + "/"}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.list()); n != 3 {
		t.Fatalf("endpoints %v: want 3 without duplicates", e.list())
	}
	c := &http.Client{Transport: e}
	var got string
	for i := 0; i < 3 && got == ""; i++ {
		resp, err := c.Get("http://" + placeholder + "/montage.v1.AgentService/Heartbeat")
		if err != nil || resp.StatusCode != 200 {
			if resp != nil {
				resp.Body.Close()
			}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = string(b)
	}
	if got != "ok /montage.v1.AgentService/Heartbeat" {
		t.Fatalf("after failing over: %q", got)
	}
	// Other hosts (presigned object URLs) pass through untouched.
	resp, err := c.Get(good.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok /x" {
		t.Errorf("direct URL: %q", b)
	}
	if _, err := newEndpoints([]string{"ftp://x"}, http.DefaultTransport); err == nil {
		t.Error("accepted an ftp coordinator")
	}
}
