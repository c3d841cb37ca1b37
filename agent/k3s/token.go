package k3s

import (
	"fmt"
	"os"
	"strings"
)

// TokenValue is the token the spec configures: Token, else the content of
// TokenFile without its trailing line break, else "" (k3s makes its own).
// The agent needs the value itself to keep it sealed by the TPM.
func (s Spec) TokenValue() (Secret, error) {
	if s.TokenFile == "" {
		return s.Token, nil
	}
	b, err := os.ReadFile(s.TokenFile)
	if err != nil {
		return "", fmt.Errorf("token_file %s: %w", s.TokenFile, err)
	}
	tok := strings.TrimRight(string(b), "\r\n")
	switch {
	case tok == "":
		return "", fmt.Errorf("token_file %s: empty", s.TokenFile)
	case strings.ContainsAny(tok, "\r\n"):
		return "", fmt.Errorf("token_file %s: more than one line", s.TokenFile)
	}
	return Secret(tok), nil
}
