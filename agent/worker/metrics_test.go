package worker

import "testing"

// An unspecified metrics host is completed with this PC's address on the
// route to the coordinator (loopback here); a named host is kept.
func TestAdvertise(t *testing.T) {
	for _, c := range []struct{ addr, coord, want string }{
		{":9102", "http://127.0.0.1:7400", "127.0.0.1:9102"},
		{"0.0.0.0:9102", "http://127.0.0.1:7400", "127.0.0.1:9102"},
		{"[::]:9102", "https://127.0.0.1", "127.0.0.1:9102"},
		{"10.0.0.5:9102", "http://127.0.0.1:7400", "10.0.0.5:9102"},
		{"pc.lan:9102", "http://127.0.0.1:7400", "pc.lan:9102"},
		{"", "http://127.0.0.1:7400", ""},
	} {
		if got := advertise(c.addr, c.coord); got != c.want {
			t.Errorf("advertise(%q, %q) = %q, want %q", c.addr, c.coord, got, c.want)
		}
	}
}
