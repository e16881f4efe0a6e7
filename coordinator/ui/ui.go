// Package ui serves the web console: static assets embedded in the
// binary, a client of the same Connect API as montagectl, and the sign-in
// that puts the operator (or viewer) token in an HttpOnly cookie.
package ui

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/stream-montages/montage/coordinator/auth"
)

//go:embed assets
var assets embed.FS

// CSP allows only this origin's scripts and styles (none inline), and
// media and images from the object store, which may be another origin.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; " +
	"media-src 'self' blob: http: https:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// Handler serves /ui/ and its sign-in. secure marks the cookie Secure
// (the coordinator serves TLS).
func Handler(tokens auth.Tokens, secure bool) http.Handler {
	sub, _ := fs.Sub(assets, "assets") // the directory is embedded above
	files := http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ui/session", func(w http.ResponseWriter, r *http.Request) { signIn(w, r, tokens, secure) })
	mux.HandleFunc("DELETE /ui/session", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /ui/session", func(w http.ResponseWriter, r *http.Request) {
		role := "open"
		if !tokens.Open() {
			role = ""
			if c, err := r.Cookie(auth.SessionCookie); err == nil {
				role = tokens.Role(c.Value)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{"role": role})
	})
	mux.Handle("GET /ui/", files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.URL.Path == "/ui" {
			http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".js") || strings.HasSuffix(r.URL.Path, ".css") || strings.HasSuffix(r.URL.Path, ".html") || r.URL.Path == "/ui/" {
			h.Set("Cache-Control", "no-cache")
		}
		mux.ServeHTTP(w, r)
	})
}

// signIn takes a token (JSON {"token": …} from the page's script) and, if
// it is the operator's or the viewer's, keeps it in the session cookie.
func signIn(w http.ResponseWriter, r *http.Request, tokens auth.Tokens, secure bool) {
	// Only the page's own script sends JSON: a cross-site form cannot.
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "sign in with JSON", http.StatusUnsupportedMediaType)
		return
	}
	var in struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
		http.Error(w, "bad sign-in request", http.StatusBadRequest)
		return
	}
	role := tokens.Role(strings.TrimSpace(in.Token))
	if role == "" || tokens.Open() {
		time.Sleep(200 * time.Millisecond) // slows guessing a little
		http.Error(w, "that token is neither the operator's nor the viewer's", http.StatusUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: strings.TrimSpace(in.Token), Path: "/", MaxAge: 30 * 24 * 3600,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"role": role})
}
