package auth

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	tk := Tokens{Operator: "operator-token-123456", AgentJoin: "join-token-abcdefghij"}
	if tk.CheckOperator("operator-token-123456") != nil || !errors.Is(tk.CheckOperator("nope"), ErrUnauthenticated) || tk.CheckOperator("") == nil {
		t.Error("operator check")
	}
	if tk.CheckJoin("join-token-abcdefghij") != nil || tk.CheckJoin("operator-token-123456") == nil {
		t.Error("join check (the operator token must not register agents)")
	}
	secret := strings.Repeat("ab", 32)
	hashes := map[string]string{"a1": CredentialHash(secret), "agent.with.dots": CredentialHash(secret)}
	hashOf := func(id string) string { return hashes[id] }
	for _, id := range []string{"a1", "agent.with.dots"} {
		if got, err := tk.CheckAgent(Credential(id, secret), hashOf); err != nil || got != id {
			t.Errorf("own credential of %s: %q %v", id, got, err)
		}
	}
	if _, err := tk.CheckAgent(Credential("a2", secret), hashOf); err == nil {
		t.Error("a1's secret worked for a2, which has none")
	}
	for _, bad := range []string{"", "a1", "a1.", ".x", "join-token-abcdefghij", Credential("a1", secret+"0"), Credential("a1", CredentialHash(secret))} {
		if _, err := tk.CheckAgent(bad, hashOf); err == nil {
			t.Errorf("CheckAgent(%q) accepted", bad)
		}
	}
	open := Tokens{}
	if open.CheckOperator("") != nil || open.CheckJoin("") != nil {
		t.Error("open cluster refused")
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("MONTAGE_OPERATOR_TOKEN", "")
	t.Setenv("MONTAGE_AGENT_JOIN_TOKEN", "")
	if tk, err := Load("", ""); err != nil || !tk.Open() {
		t.Fatalf("no tokens: %+v %v", tk, err)
	}
	t.Setenv("MONTAGE_OPERATOR_TOKEN", "short")
	if _, err := Load("", ""); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short token: %v", err)
	}
	t.Setenv("MONTAGE_OPERATOR_TOKEN", "operator-token-123456")
	if _, err := Load("", ""); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("one token: %v", err)
	}
	f := t.TempDir() + "/join"
	if err := os.WriteFile(f, []byte("join-token-abcdefghij\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tk, err := Load("", f); err != nil || tk.AgentJoin != "join-token-abcdefghij" {
		t.Errorf("from file: %+v %v", tk, err)
	}
}
