// Package egress decides which addresses an agent may open a source
// connection to, and dials only those. Anyone allowed to submit a job names
// URLs that every agent then fetches, from inside the PC's network: without
// a check, a job could read the cloud metadata service, the router's admin
// page or a service on the PC's own loopback. The check runs on the
// resolved IP at connect time, for every connection (redirects included),
// so DNS rebinding cannot slip past a check done earlier on the name.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Policy says which source addresses are allowed.
type Policy struct {
	// Allow adds ranges that are allowed whatever else says (tests and -dev
	// allow 127.0.0.0/8 to read sample media on loopback).
	Allow []netip.Prefix
	// DenyPrivate refuses private LAN ranges too (10/8, 172.16/12,
	// 192.168/16, fc00::/7), which are allowed by default because home labs
	// serve their VODs there.
	DenyPrivate bool
}

// ParseCIDRs reads a comma-separated list of CIDR ranges or single IPs.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR range nor an IP address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// DeniedError is a refused source address.
type DeniedError struct {
	Addr   netip.Addr
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("source address %s is not allowed (see -allow-sources): %s", e.Addr, e.Reason)
}

// ErrDenied matches every DeniedError with errors.Is.
var ErrDenied = errors.New("source address not allowed")

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// Check returns nil when the policy allows a connection to addr.
func (p Policy) Check(addr netip.Addr) error {
	a := addr.Unmap()
	for _, pr := range p.Allow {
		if pr.Contains(a) {
			return nil
		}
	}
	deny := func(why string) error { return &DeniedError{Addr: a, Reason: why} }
	switch {
	case !a.IsValid():
		return deny("invalid address")
	case a.IsUnspecified() || thisNetwork.Contains(a):
		return deny("unspecified")
	case a.IsLoopback():
		return deny("loopback")
	case a.IsLinkLocalUnicast():
		return deny("link-local (cloud metadata services live here)")
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return deny("multicast or broadcast")
	case p.DenyPrivate && a.IsPrivate():
		return deny("private network (-deny-private-sources)")
	}
	return nil
}

// Resolver finds a name's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer connects only to allowed addresses. It resolves the name itself
// and dials the checked IP, so what was checked is what is connected to.
type Dialer struct {
	Policy   Policy
	Resolver Resolver // default net.DefaultResolver
	// Dial opens the connection to an IP:port; default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialContext is for http.Transport.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if ips, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, err
		}
	}
	dial := d.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var firstErr error
	for _, ip := range ips {
		if err := d.Policy.Check(ip); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		c, err := dial(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		firstErr = err
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%s has no addresses", host)
	}
	return nil, firstErr
}

// Client is the HTTP client for sources: every connection, redirects
// included, goes through a Dialer with the policy; certificates are checked
// against roots (nil: the system's), never skipped; environment proxies are
// ignored, since through a proxy the address checked would be the proxy's.
func Client(p Policy, roots *x509.CertPool) *http.Client {
	d := &Dialer{Policy: p}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return fmt.Errorf("source %s: more than 10 redirects", via[0].URL.Redacted())
		}
		return nil
	}}
}
