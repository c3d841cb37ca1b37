package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/footer"
)

func runSlot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var opts cli.Options
	root := &cobra.Command{Use: "cairn", SilenceUsage: true, SilenceErrors: true}
	opts.Bind(root)
	root.AddCommand(newKeysCmd(&opts), newSlotCmd(&opts))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestReleaseKeyThenSlotBuildThenVerify is the release engineer's path:
// keys init, release-key, slot build, slot verify; then a slot built with
// another repository's key is refused.
func TestReleaseKeyThenSlotBuildThenVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs mkfs.ext4")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Fatalf("mkfs.ext4 not installed (scripts/install-deps.sh): %v", err)
	}
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := runSlot(t, args...)
		if err != nil {
			t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustRun("keys", "init", repo)
	out := mustRun("keys", "release-key", "--repo", repo)
	priv, err := os.ReadFile(filepath.Join(repo, "keys", "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, string(priv[30:60])) {
		t.Fatal("release-key printed the private key")
	}
	if _, err := runSlot(t, "keys", "release-key", "--repo", repo); err == nil {
		t.Fatal("second release-key replaced the first")
	}

	root := filepath.Join(work, "root")
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "boot", "vmlinuz"), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(work, "slot.img")
	out = mustRun("-o", "json", "slot", "build", "--root", root, "--out", img, "--slot-size", "16MiB",
		"--release-key", filepath.Join(repo, "keys", "release.key"), "--version", "1.3.0", "--board", "qemu-amd64",
		"--source-date-epoch", "1767225600")
	var built struct {
		RootHash string `json:"verity_root_hash"`
		SlotSize int64  `json:"slot_size"`
	}
	if err := json.Unmarshal([]byte(out), &built); err != nil || built.SlotSize != 16<<20 || len(built.RootHash) != 64 {
		t.Fatalf("slot build output %q: %v", out, err)
	}
	f, err := footer.ReadFromDevice(img)
	if err != nil || f.Manifest.VerityRootHash != built.RootHash {
		t.Fatalf("footer: %v", err)
	}
	out = mustRun("slot", "verify", img, "--release-public-key", filepath.Join(repo, "release-key.pub"))
	if !strings.Contains(out, "release 1.3.0 for qemu-amd64") {
		t.Fatalf("slot verify output: %q", out)
	}

	other := filepath.Join(work, "other")
	mustRun("keys", "init", other)
	mustRun("keys", "release-key", "--repo", other)
	if out, err := runSlot(t, "slot", "verify", img, "--release-public-key", filepath.Join(other, "release-key.pub")); err == nil ||
		!strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("verify with another repository's key: %v\n%s", err, out)
	}
}
