package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	loop, _ := ParseCIDRs("127.0.0.0/8")
	cases := []struct {
		ip     string
		policy Policy
		denied string // "" when allowed
	}{
		{"127.0.0.1", Policy{}, "loopback"},
		{"::1", Policy{}, "loopback"},
		{"::ffff:127.0.0.1", Policy{}, "loopback"},
		{"169.254.169.254", Policy{}, "link-local"},
		{"fe80::1", Policy{}, "link-local"},
		{"0.0.0.0", Policy{}, "unspecified"},
		{"0.1.2.3", Policy{}, "unspecified"},
		{"::", Policy{}, "unspecified"},
		{"224.0.0.1", Policy{}, "multicast"},
		{"255.255.255.255", Policy{}, "broadcast"},
		{"192.168.1.10", Policy{}, ""},
		{"10.0.0.5", Policy{}, ""},
		{"fd00::5", Policy{}, ""},
		{"192.168.1.10", Policy{DenyPrivate: true}, "private"},
		{"93.184.216.34", Policy{DenyPrivate: true}, ""},
		{"2606:4700::1111", Policy{}, ""},
		{"127.0.0.1", Policy{Allow: loop}, ""},
		{"127.0.0.1", Policy{Allow: loop, DenyPrivate: true}, ""},
		{"169.254.169.254", Policy{Allow: loop}, "link-local"},
	}
	for _, c := range cases {
		err := c.policy.Check(netip.MustParseAddr(c.ip))
		switch {
		case c.denied == "" && err != nil:
			t.Errorf("%s: refused (%v), want allowed", c.ip, err)
		case c.denied != "" && (err == nil || !strings.Contains(err.Error(), c.denied) || !errors.Is(err, ErrDenied)):
			t.Errorf("%s: %v, want a refusal naming %q", c.ip, err, c.denied)
		}
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs("127.0.0.0/8, 10.1.2.3 ,::1/128")
	if err != nil || len(got) != 3 || got[1].String() != "10.1.2.3/32" {
		t.Errorf("ParseCIDRs = %v, %v", got, err)
	}
	for _, bad := range []string{"nope", "10.0.0.0/33", "1.2.3"} {
		if _, err := ParseCIDRs(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseCIDRs(%q) = %v, want an error naming it", bad, err)
		}
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if ips, ok := f[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// recorder stands in for the network: it notes what would be dialed and
// never sends a packet.
type recorder struct{ dialed []string }

var errRecorded = errors.New("recorded, not dialed")

func (r *recorder) dial(_ context.Context, _, addr string) (net.Conn, error) {
	r.dialed = append(r.dialed, addr)
	return nil, errRecorded
}

func TestDialerChecksResolvedAddresses(t *testing.T) {
	res := fakeResolver{
		"metadata.example": {netip.MustParseAddr("169.254.169.254")},
		"rebind.example":   {netip.MustParseAddr("127.0.0.1")},
		"cdn.example":      {netip.MustParseAddr("93.184.216.34")},
		"mixed.example":    {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("203.0.113.7")},
		"lan-vods.example": {netip.MustParseAddr("192.168.1.20")},
	}
	cases := []struct {
		addr    string
		policy  Policy
		refused string // the address named in the refusal
		dialed  string
	}{
		{"metadata.example:80", Policy{}, "169.254.169.254", ""},
		{"rebind.example:443", Policy{}, "127.0.0.1", ""},
		{"169.254.169.254:80", Policy{}, "169.254.169.254", ""},
		{"[::1]:8080", Policy{}, "::1", ""},
		{"cdn.example:443", Policy{}, "", "93.184.216.34:443"},
		{"mixed.example:443", Policy{}, "", "203.0.113.7:443"},
		{"lan-vods.example:80", Policy{}, "", "192.168.1.20:80"},
		{"lan-vods.example:80", Policy{DenyPrivate: true}, "192.168.1.20", ""},
	}
	for _, c := range cases {
		rec := &recorder{}
		d := &Dialer{Policy: c.policy, Resolver: res, Dial: rec.dial}
		_, err := d.DialContext(context.Background(), "tcp", c.addr)
		if c.refused != "" {
			want := "source address " + c.refused + " is not allowed (see -allow-sources)"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: err %v, want %q", c.addr, err, want)
			}
			if len(rec.dialed) != 0 {
				t.Errorf("%s: dialed %v although refused", c.addr, rec.dialed)
			}
			continue
		}
		if !errors.Is(err, errRecorded) || len(rec.dialed) != 1 || rec.dialed[0] != c.dialed {
			t.Errorf("%s: dialed %v (err %v), want exactly %s", c.addr, rec.dialed, err, c.dialed)
		}
	}
}
