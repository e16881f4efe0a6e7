// Package tlsconf builds the TLS configurations the three programs share
// from certificate files: servers (API and raft) and clients (agents,
// montagectl, coordinators talking to each other).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names a node's certificate, key and the CA that signed the cluster's
// certificates.
type Files struct {
	Cert, Key, CA string
}

// Enabled reports whether TLS was asked for.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" }

func pool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("TLS CA %s: no PEM certificates in it", caFile)
	}
	return p, nil
}

// Server is the API's configuration: the node's certificate; clients
// authenticate with tokens, not certificates.
func (f Files) Server() (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("TLS needs both -tls-cert and -tls-key")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, nil
}

// Mutual is raft's configuration: both ends present certificates signed by
// the CA, so only coordinators of this cluster can join its log.
func (f Files) Mutual() (server, client *tls.Config, err error) {
	if f.CA == "" {
		return nil, nil, errors.New("TLS between coordinators needs -tls-ca")
	}
	srv, err := f.Server()
	if err != nil {
		return nil, nil, err
	}
	p, err := pool(f.CA)
	if err != nil {
		return nil, nil, err
	}
	srv.NextProtos = nil
	srv.ClientCAs, srv.ClientAuth = p, tls.RequireAndVerifyClientCert
	return srv, &tls.Config{Certificates: srv.Certificates, RootCAs: p, MinVersion: tls.VersionTLS12}, nil
}

// Client verifies servers against caFile (the system roots when empty).
// skipVerify turns verification off: for tests only.
func Client(caFile string, skipVerify bool) (*tls.Config, error) {
	// InsecureSkipVerify only with -tls-skip-verify, whose help says it is for tests.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	if caFile != "" {
		p, err := pool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = p
	}
	return cfg, nil
}

// SystemPool is the system's roots (SSL_CERT_FILE and SSL_CERT_DIR are
// honoured on Linux) plus the CAs in extra files: what public sources and
// object stores are verified against. Empty names are skipped.
func SystemPool(extra ...string) (*x509.CertPool, error) {
	p, err := x509.SystemCertPool()
	if err != nil || p == nil {
		p = x509.NewCertPool()
	}
	for _, f := range extra {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		if !p.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificates in it", f)
		}
	}
	return p, nil
}
