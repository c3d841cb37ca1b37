package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestBootTimeIsBtime: the health gate counts node heartbeats from the
// kernel's boot time; without /proc/stat, from the agent's start.
func TestBootTimeIsBtime(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1795300000\nprocesses 7\n"
	if err := os.WriteFile(filepath.Join(root, "proc/stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := bootTime(root, zap.NewNop()); !got.Equal(time.Unix(1795300000, 0)) {
		t.Errorf("boot time %v, want btime 1795300000", got)
	}
	before := time.Now()
	if got := bootTime(t.TempDir(), zap.NewNop()); got.Before(before) {
		t.Errorf("boot time without proc/stat %v, want no earlier than the call (%v)", got, before)
	}
}
