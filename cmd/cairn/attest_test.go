package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

// runAttest runs `cairn attest ...` in-process and returns its output and error.
func runAttest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var opts cli.Options
	root := &cobra.Command{Use: "cairn", SilenceUsage: true, SilenceErrors: true}
	opts.Bind(root)
	root.AddCommand(newAttestCmd(&opts))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"attest"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// rootHashOf stands for the dm-verity root hash of a release's slot image.
func rootHashOf(version string) []byte {
	h := sha256.Sum256([]byte("rootfs of " + version))
	return h[:]
}

// publishRelease makes a channel repository that signs release 1.3.0 for
// qemu-x86_64, as a release engineer does, and returns the workspace.
func publishRelease(t *testing.T) string {
	work := t.TempDir()
	repo, releases := filepath.Join(work, "repo"), filepath.Join(work, "releases")
	img := filepath.Join(work, "slot.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte("cairn slot "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	cairn(t, "keys", "init", repo)
	cairn(t, "release", "create", "--image", img, "--version", "1.3.0", "--board", "qemu-x86_64",
		"--verity-root-hash", hex.EncodeToString(rootHashOf("1.3.0")), "--releases", releases)
	cairn(t, "channel", "publish", "--repo", repo, "--releases", releases, "--channel", "stable", "--release", "1.3.0")
	return repo
}

// attestDevice boots a device on a fresh swtpm with release version measured
// from slot B, as cairn-init does, and answers nonce as `cairn-agent attest`
// does. It returns the path of the bundle.
func attestDevice(t *testing.T, version string, nonce []byte) string {
	t.Helper()
	dev := agent.MeasuredBoot{Root: t.TempDir(), TPM: tpmtest.Swtpm(t)}
	tp, err := tpm.Open(context.Background(), dev.TPM)
	if err != nil {
		t.Fatal(err)
	}
	footer := sha256.Sum256([]byte("footer of " + version))
	id := tpm.SlotIdentity{Slot: "B", Release: version, RootHash: rootHashOf(version), FooterDigest: footer[:]}
	_, err = tp.Measure(filepath.Join(dev.Root, tpm.DefaultLogPath), id)
	tp.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := dev.Attest(context.Background(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newNonce(t *testing.T) []byte {
	n := make([]byte, 32)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAttestVerifyNamesTheSignedReleaseTheDeviceRuns(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // the verifier's metadata cache
	repo := publishRelease(t)
	trustedRoot := filepath.Join(repo, "repository", "root.json")
	nonce := newNonce(t)
	bundle := attestDevice(t, "1.3.0", nonce)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(repo, "repository"))))
	defer srv.Close()

	want := "slot B: release 1.3.0, measured, matches signed manifest (board qemu-x86_64)\n"
	for name, extra := range map[string][]string{
		"repository beside the trusted root": nil,
		"repository served over HTTP":        {"--repository", srv.URL},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"verify", bundle, "--nonce", hex.EncodeToString(nonce), "--trusted-root", trustedRoot}, extra...)
			out, err := runAttest(t, args...)
			if err != nil {
				t.Fatalf("attest verify: %v\n%s", err, out)
			}
			if out != want {
				t.Fatalf("attest verify said %q, want %q", out, want)
			}
		})
	}

	out, err := runAttest(t, "verify", bundle, "--nonce", hex.EncodeToString(nonce), "--trusted-root", trustedRoot, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Release, Board, Slot string
		RootHash             string `json:"root_hash"`
		MatchesManifest      bool   `json:"matches_manifest"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("--output json: %v\n%s", err, out)
	}
	if v.Release != "1.3.0" || v.Board != "qemu-x86_64" || v.Slot != "B" || !v.MatchesManifest ||
		v.RootHash != hex.EncodeToString(rootHashOf("1.3.0")) {
		t.Fatalf("--output json: %s", out)
	}
}

func TestAttestVerifyReportsEachMismatch(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	repo := publishRelease(t)
	trustedRoot := filepath.Join(repo, "repository", "root.json")
	nonce := newNonce(t)
	other := publishRelease(t) // another repository, with keys of its own

	for _, tc := range []struct {
		name   string
		bundle string
		nonce  []byte
		root   string
		want   error
		words  string
	}{
		{"wrong nonce", attestDevice(t, "1.3.0", nonce), newNonce(t), trustedRoot, tpm.ErrWrongNonce, "wrong nonce"},
		{"release not in the repository", attestDevice(t, "1.4.0", nonce), nonce, trustedRoot, tpm.ErrUnknownRootHash,
			"slot B: release 1.4.0, measured, does not match signed manifest: measurement log: event 0: unknown root hash " + hex.EncodeToString(rootHashOf("1.4.0"))},
		{"repository not signed by the trusted root", attestDevice(t, "1.3.0", nonce), nonce, filepath.Join(other, "repository", "root.json"), update.ErrUntrustedSignature, "repository"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"verify", tc.bundle, "--nonce", hex.EncodeToString(tc.nonce), "--trusted-root", tc.root}
			if tc.root != trustedRoot {
				args = append(args, "--repository", filepath.Join(repo, "repository"))
			}
			out, err := runAttest(t, args...)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("attest verify: %v, want %v saying %q\n%s", err, tc.want, tc.words, out)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}
