// Package auth decides who may call what. Operators present the operator
// token; agents present the join token to register and from then on their
// own credential: a secret each agent makes for itself, whose hash the
// replicated state keeps, so any coordinator can check it and knowing the
// join token does not let anyone act as an agent that already exists.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Tokens are the cluster's secrets; empty means open (dev, loopback).
type Tokens struct {
	Operator  string
	AgentJoin string
	// Viewer, when set, reads jobs, agents and the catalog but changes
	// nothing (the web console's read-only sign-in).
	Viewer string
}

// SessionCookie carries the web console's token (HttpOnly, SameSite=Strict):
// the console sets it, the API reads it.
const SessionCookie = "montage_session"

// Errors the API maps to Unauthenticated and PermissionDenied.
var (
	ErrUnauthenticated = errors.New("missing or wrong token")
	ErrForbidden       = errors.New("this credential may not do that")
)

// Open reports whether no tokens are configured.
func (t Tokens) Open() bool { return t.Operator == "" && t.AgentJoin == "" }

// Load reads each token from its file (when given) or else the environment
// variable. Tokens never come from flags, where ps and shell history see them.
func Load(operatorFile, joinFile string) (Tokens, error) {
	read := func(file, env string) (string, error) {
		if file == "" {
			return strings.TrimSpace(os.Getenv(env)), nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	var t Tokens
	var err error
	if t.Operator, err = read(operatorFile, "MONTAGE_OPERATOR_TOKEN"); err != nil {
		return t, err
	}
	if t.AgentJoin, err = read(joinFile, "MONTAGE_AGENT_JOIN_TOKEN"); err != nil {
		return t, err
	}
	for name, v := range map[string]string{"operator": t.Operator, "agent join": t.AgentJoin} {
		if v != "" && len(v) < 16 {
			return t, fmt.Errorf("the %s token is %d characters; use at least 16 (e.g. head -c 24 /dev/urandom | base64)", name, len(v))
		}
	}
	if (t.Operator == "") != (t.AgentJoin == "") {
		return t, errors.New("set both the operator token and the agent join token, or neither")
	}
	return t, nil
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// CheckOperator accepts the operator token.
func (t Tokens) CheckOperator(bearer string) error {
	if t.Open() || (bearer != "" && equal(bearer, t.Operator)) {
		return nil
	}
	return ErrUnauthenticated
}

// Role is what a bearer may do on operator calls: "operator", "viewer", or
// "" for neither.
func (t Tokens) Role(bearer string) string {
	switch {
	case t.CheckOperator(bearer) == nil:
		return "operator"
	case t.Viewer != "" && bearer != "" && equal(bearer, t.Viewer):
		return "viewer"
	}
	return ""
}

// LoadViewer reads the viewer token from its file (when given) or else
// MONTAGE_VIEWER_TOKEN.
func LoadViewer(file string) (string, error) {
	v := strings.TrimSpace(os.Getenv("MONTAGE_VIEWER_TOKEN"))
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("viewer token file: %w", err)
		}
		v = strings.TrimSpace(string(b))
	}
	if v != "" && len(v) < 16 {
		return "", fmt.Errorf("the viewer token is %d characters; use at least 16", len(v))
	}
	return v, nil
}

// CheckJoin accepts the agent join token (Register only).
func (t Tokens) CheckJoin(bearer string) error {
	if t.Open() || (bearer != "" && equal(bearer, t.AgentJoin)) {
		return nil
	}
	return ErrUnauthenticated
}

// MinSecret is the shortest agent secret Register accepts (hex of 32
// random bytes is 64).
const MinSecret = 32

// CredentialHash is what the replicated state keeps of an agent's secret:
// enough to check it, useless to present.
func CredentialHash(secret string) string {
	h := sha256.Sum256([]byte("montage agent credential v2\x00" + secret))
	return hex.EncodeToString(h[:])
}

// SplitCredential reads "AGENT-ID.SECRET"; agent ids may hold dots, the
// secret (hex) never does.
func SplitCredential(bearer string) (id, secret string, ok bool) {
	i := strings.LastIndexByte(bearer, '.')
	if i <= 0 || i == len(bearer)-1 {
		return "", "", false
	}
	return bearer[:i], bearer[i+1:], true
}

// Credential is the bearer an agent presents: its id and its own secret,
// which it made at its first start and keeps in its data directory.
func Credential(agentID, secret string) string { return agentID + "." + secret }

// CheckAgent accepts an agent's credential and returns the agent it names;
// hashOf gives the CredentialHash the replicated state holds for an id ("" if
// none). The caller must then refuse a request about any other agent.
func (t Tokens) CheckAgent(bearer string, hashOf func(agentID string) string) (string, error) {
	if t.Open() {
		return "", nil
	}
	id, secret, ok := SplitCredential(bearer)
	if !ok {
		return "", ErrUnauthenticated
	}
	h := hashOf(id)
	if h == "" || !equal(h, CredentialHash(secret)) {
		return "", ErrUnauthenticated
	}
	return id, nil
}
