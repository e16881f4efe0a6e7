package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stream-montages/montage/coordinator/auth"
)

var tokens = auth.Tokens{Operator: "operator-token-0123456789", AgentJoin: "join-token-0123456789abc", Viewer: "viewer-token-0123456789ab"}

func do(h http.Handler, method, path, body, ctype string, cookie *http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// The assets are served with a CSP that allows no inline script.
func TestAssetsAndCSP(t *testing.T) {
	h := Handler(tokens, false)
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/api.js", "/ui/style.css"} {
		w := do(h, "GET", p, "", "", nil)
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Fatalf("%s: %d", p, w.Code)
		}
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: CSP %q", p, csp)
		}
	}
	if w := do(h, "GET", "/ui/index.html", "", "", nil); strings.Contains(w.Body.String(), "<script>") {
		t.Error("index.html has an inline script")
	}
}

// Sign-in takes JSON only (a cross-site form cannot send it), refuses a
// wrong token, and sets an HttpOnly SameSite=Strict cookie (Secure with
// TLS); the session says the role; sign-out clears it.
func TestSignIn(t *testing.T) {
	h := Handler(tokens, true)
	if w := do(h, "POST", "/ui/session", "token="+tokens.Operator, "application/x-www-form-urlencoded", nil); w.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("a form sign-in: %d", w.Code)
	}
	if w := do(h, "POST", "/ui/session", `{"token":"nope-nope-nope-nope-nope"}`, "application/json", nil); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Fatalf("a wrong token: %d %v", w.Code, w.Result().Cookies())
	}
	w := do(h, "POST", "/ui/session", `{"token":"`+tokens.Viewer+`"}`, "application/json", nil)
	cs := w.Result().Cookies()
	if w.Code != 200 || len(cs) != 1 || !cs[0].HttpOnly || !cs[0].Secure || cs[0].SameSite != http.SameSiteStrictMode || !strings.Contains(w.Body.String(), "viewer") {
		t.Fatalf("viewer sign-in: %d %+v %s", w.Code, cs, w.Body)
	}
	if w := do(h, "GET", "/ui/session", "", "", cs[0]); !strings.Contains(w.Body.String(), `"viewer"`) {
		t.Fatalf("session: %s", w.Body)
	}
	if w := do(h, "GET", "/ui/session", "", "", nil); !strings.Contains(w.Body.String(), `"role":""`) {
		t.Fatalf("no session: %s", w.Body)
	}
	if w := do(h, "DELETE", "/ui/session", "", "", cs[0]); w.Code != http.StatusNoContent || w.Result().Cookies()[0].MaxAge >= 0 {
		t.Fatalf("sign-out: %d", w.Code)
	}
	if w := do(Handler(auth.Tokens{}, false), "GET", "/ui/session", "", "", nil); !strings.Contains(w.Body.String(), `"open"`) {
		t.Fatalf("an open farm: %s", w.Body)
	}
}
