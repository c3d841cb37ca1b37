package update

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv carries an install request to TestInstallChildProcess, which
// the benchmark runs in a process of its own to measure its peak RSS.
const childEnv = "CAIRN_INSTALL_BENCH_CHILD"

type childJob struct {
	Request  InstallRequest
	StateDir string
}

func TestInstallChildProcess(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return // only ever run by BenchmarkInstall
	}
	var job childJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	in := &Installer{StateDir: job.StateDir}
	if err := in.Install(context.Background(), job.Request, nil); err != nil {
		t.Fatal(err)
	}
	// The kernel's rusage of a child started with vfork counts the
	// parent's memory too; the child's own high-water mark is here.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Printf("%s%s\n", hwmPrefix, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
}

const hwmPrefix = "cairn-install-vmhwm-kb="

// BenchmarkInstall installs a 1 GiB image from a local HTTP server into a
// file-backed slot, against `curl | zstd -d | dd conv=fsync` of the same
// bytes into the same kind of file (the floor: no hashing, no
// checkpoints), with the slot on tmpfs (the CPU cost) and on disk.
func BenchmarkInstall(b *testing.B) {
	for _, tool := range []string{"curl", "zstd", "dd"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s (Debian package %s) is the floor of this benchmark: %v", tool, tool, err)
		}
	}
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	rel := makeRelease(b, size, 0, 42)
	rel.image = nil // 1 GiB the benchmark no longer needs
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(rel.zst))))
	b.Cleanup(srv.Close)
	url := srv.URL + "/" + filepath.Base(rel.zst)
	b.Logf("image %d bytes, %d compressed, %d frames", size, rel.manifest.Image.CompressedSize, len(rel.manifest.Image.Frames.CompressedSizes))
	for _, where := range []string{"tmpfs", "disk"} {
		b.Run("slot="+where, func(b *testing.B) {
			dir := b.TempDir()
			if where == "tmpfs" {
				requireRoot(b)
				if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size+size/4)); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
			}
			slot := filepath.Join(dir, "slot")
			var cairn, floor time.Duration
			var rss int64
			for range b.N {
				mkSlot(b, slot, size)
				d, maxRSS := runChild(b, childJob{StateDir: b.TempDir(),
					Request: InstallRequest{Target: rel.target(url), Manifest: rel.manifest, Device: slot}})
				cairn += d
				rss = max(rss, maxRSS)
				mkSlot(b, slot, size)
				floor += runFloor(b, url, slot)
			}
			mbs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
			b.ReportMetric(mbs(cairn), "cairn_MB/s")
			b.ReportMetric(mbs(floor), "floor_MB/s")
			b.ReportMetric(mbs(cairn)/mbs(floor), "cairn/floor")
			b.ReportMetric(float64(rss)/(1<<20), "cairn_peak_RSS_MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// mkSlot makes a fresh slot file of size bytes, as a partition would be.
func mkSlot(b *testing.B, path string, size int64) {
	_ = os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
}

func runChild(b *testing.B, job childJob) (time.Duration, int64) {
	spec, err := json.Marshal(job)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstallChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("installer child: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, hwmPrefix); ok {
			kb, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("installer child: %q: %v", line, err)
			}
			return d, kb << 10
		}
	}
	b.Fatalf("installer child reported no VmHWM:\n%s", out)
	return 0, 0
}

func runFloor(b *testing.B, url, slot string) time.Duration {
	cmd := exec.Command("sh", "-c", `curl -sSf "$1" | zstd -d -q | dd of="$2" bs=4M iflag=fullblock conv=notrunc,fsync status=none`, "floor", url, slot)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("curl | zstd -d | dd: %v\n%s", err, out)
	}
	return time.Since(start)
}
