// Package auth decides who may call what. Operators present the operator
// token; agents present the join token once (Register) and from then on a
// per-agent credential that any coordinator can check without shared state:
// an HMAC of the agent id under a key derived from the join token.
package auth

import (
	"crypto/hmac"
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
}

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

// CheckJoin accepts the agent join token (Register only).
func (t Tokens) CheckJoin(bearer string) error {
	if t.Open() || (bearer != "" && equal(bearer, t.AgentJoin)) {
		return nil
	}
	return ErrUnauthenticated
}

func (t Tokens) secret(agentID string) string {
	key := hmac.New(sha256.New, []byte(t.AgentJoin))
	key.Write([]byte("montage agent credential v1"))
	m := hmac.New(sha256.New, key.Sum(nil))
	m.Write([]byte(agentID))
	return hex.EncodeToString(m.Sum(nil))
}

// Credential is what Register hands an agent.
func (t Tokens) Credential(agentID string) string {
	if t.Open() {
		return ""
	}
	return agentID + "." + t.secret(agentID)
}

// CheckAgent accepts an agent credential and returns the agent it names.
// The caller must then refuse a request about any other agent.
func (t Tokens) CheckAgent(bearer string) (string, error) {
	if t.Open() {
		return "", nil
	}
	id, secret, ok := strings.Cut(bearer, ".")
	if !ok || id == "" || !equal(secret, t.secret(id)) {
		return "", ErrUnauthenticated
	}
	return id, nil
}
