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
	"slices"
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
	// ReleaseKey checks the slot's footer and dm-verity tree after the
	// install (PKIX DER), as on a device.
	ReleaseKey []byte
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
	in := &Installer{StateDir: job.StateDir, VerifyVerity: slotVerifier(t, job.ReleaseKey)}
	if err := in.Install(context.Background(), job.Request, nil); err != nil {
		t.Fatal(err)
	}
	// The kernel's rusage of a child started with vfork counts the
	// parent's memory too; the child's own high-water mark is here.
	kb, err := vmHWM("self")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%d\n", hwmPrefix, kb)
}

const hwmPrefix = "cairn-install-vmhwm-kb="

// vmHWM is the peak resident set size of process pid ("self" for this
// one) in KiB.
func vmHWM(pid string) (int64, error) {
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%s/status: no VmHWM", pid)
}

// benchRounds is how many times each contender installs the image per
// slot kind, interleaved, so a busy machine slows all of them alike and
// the medians compare like with like.
const benchRounds = 5

// sample is one install: its wall time, the final fsync of the slot
// included, and the CPU time its processes used.
type sample struct{ wall, cpu time.Duration }

// contender is one way of putting the image into the slot.
type contender struct {
	name string
	run  func() sample
}

// BenchmarkInstall installs a 1 GiB image from a local HTTP server into a
// file-backed slot, in rounds of three contenders run one after the
// other into the same slot file:
//
//   - floor: `curl | zstd -d | dd conv=fsync`, the same bytes with no
//     verification, no checkpoints;
//   - cairn: the Installer, in a child process whose peak RSS is read,
//     ending with the check of the slot's signed footer and dm-verity
//     tree that a device runs (the benchmark's image carries both);
//   - rauc: `curl -o` of a signed plain RAUC bundle holding the same image
//     (Debian's RAUC 1.8 does not stream), then `rauc install` through a
//     rauc service on a private D-Bus, into a raw slot that is the same
//     file, then an fsync of the slot.
//
// It runs once with the slot on tmpfs (the CPU cost) and once on disk,
// and reports median MB/s, ratios of medians, CPU seconds and peak RSS.
// With CAIRN_INSTALL_BENCH_PROFILE=DIR each cairn install writes its CPU
// profile into DIR.
func BenchmarkInstall(b *testing.B) {
	requireTools(b, map[string]string{"curl": "curl", "zstd": "zstd", "dd": "coreutils",
		"rauc": "rauc", "mksquashfs": "squashfs-tools", "dbus-daemon": "dbus-daemon", "openssl": "openssl"})
	e := &benchEnv{size: 1 << 30, rounds: benchRounds}
	if testing.Short() {
		e.size, e.rounds = 64<<20, 2
	}
	e.rel, e.releaseKey = makeVerityRelease(b, e.size, 42)
	srvDir := filepath.Dir(e.rel.zst)
	e.bundle = makeRaucBundle(b, e.rel.image, srvDir)
	e.rel.image = nil // 1 GiB the benchmark no longer needs
	srv := httptest.NewServer(http.FileServer(http.Dir(srvDir)))
	b.Cleanup(srv.Close)
	e.zstURL, e.bundleURL = srv.URL+"/"+filepath.Base(e.rel.zst), srv.URL+"/"+e.bundle.name
	for _, where := range []string{"tmpfs", "disk"} {
		b.Run("slot="+where, func(b *testing.B) { e.run(b, where) })
	}
}

// benchEnv is what every round installs, and from where.
type benchEnv struct {
	size              int64
	rounds            int
	rel               *testRelease
	releaseKey        []byte // PKIX DER
	bundle            *raucBundle
	zstURL, bundleURL string
}

func (e *benchEnv) run(b *testing.B, where string) {
	dir := b.TempDir()
	if where == "tmpfs" {
		requireRoot(b)
		// The slot and the downloaded bundle.
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", 2*e.size+64<<20)); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	}
	slot := filepath.Join(dir, "slot")
	fillSlot(b, slot, e.size)
	rauc := startRauc(b, e.bundle, slot)
	b.Logf("%s: image %d bytes, %d compressed in %d frames; rauc bundle %d bytes; %d rounds; load average %s",
		where, e.size, e.rel.manifest.Image.CompressedSize, len(e.rel.manifest.Image.Frames.CompressedSizes),
		e.bundle.size, e.rounds, loadAverage())
	var cairnRSS int64
	contenders := []contender{
		{"floor", func() sample { return runFloor(b, e.zstURL, slot) }},
		{"cairn", func() sample {
			s, rss := runChild(b, childJob{StateDir: b.TempDir(), ReleaseKey: e.releaseKey,
				Request: InstallRequest{Target: e.rel.target(e.zstURL), Manifest: e.rel.manifest, Device: slot}})
			cairnRSS = max(cairnRSS, rss)
			return s
		}},
		{"rauc", func() sample { return rauc.install(b, e.bundleURL, filepath.Join(dir, "bundle.raucb")) }},
	}
	samples := map[string][]sample{}
	for r := range e.rounds * b.N {
		var line []string
		for _, c := range contenders {
			dropSlotCache(b, slot)
			s := c.run()
			samples[c.name] = append(samples[c.name], s)
			line = append(line, fmt.Sprintf("%s %.0f MB/s %.2f CPU-s", c.name, e.mbPerS(s.wall), s.cpu.Seconds()))
		}
		b.Logf("%s round %d: %s", where, r+1, strings.Join(line, ", "))
	}
	med := map[string]float64{}
	for _, c := range contenders {
		med[c.name] = e.mbPerS(median(samples[c.name], func(s sample) time.Duration { return s.wall }))
		b.ReportMetric(med[c.name], c.name+"_MB/s")
		b.ReportMetric(median(samples[c.name], func(s sample) time.Duration { return s.cpu }).Seconds(), c.name+"_CPU_s")
	}
	b.ReportMetric(med["cairn"]/med["floor"], "cairn/floor")
	b.ReportMetric(med["cairn"]/med["rauc"], "cairn/rauc")
	b.ReportMetric(float64(cairnRSS)/(1<<20), "cairn_peak_RSS_MiB")
	b.ReportMetric(float64(rauc.peakRSS(b))/(1<<20), "rauc_service_peak_RSS_MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%s: load average after the rounds %s", where, loadAverage())
}

func requireTools(b *testing.B, tools map[string]string) {
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s (Debian package %s) is needed by this benchmark: %v", tool, pkg, err)
		}
	}
}

func (e *benchEnv) mbPerS(d time.Duration) float64 { return float64(e.size) / d.Seconds() / 1e6 }

func median(samples []sample, of func(sample) time.Duration) time.Duration {
	var s []time.Duration
	for _, x := range samples {
		s = append(s, of(x))
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:min(3, len(f))], " ")
}

// fillSlot makes the slot file as a partition is: every block allocated
// and written once, so each contender overwrites the same blocks.
func fillSlot(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zeros := make([]byte, 4<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}

// dropSlotCache makes the slot durable and drops its pages from the page
// cache, so no contender starts with the previous one's dirty or cached
// pages; the host's other caches are left alone.
func dropSlotCache(b *testing.B, path string) {
	syncFile(b, path)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
}

func runChild(b *testing.B, job childJob) (sample, int64) {
	spec, err := json.Marshal(job)
	if err != nil {
		b.Fatal(err)
	}
	args := []string{"-test.run=^TestInstallChildProcess$", "-test.count=1"}
	if dir := os.Getenv("CAIRN_INSTALL_BENCH_PROFILE"); dir != "" {
		f, err := os.CreateTemp(dir, "install-*.cpu.prof")
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		args = append(args, "-test.cpuprofile="+f.Name())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	s := sample{time.Since(start), cpuTime(cmd)}
	if err != nil {
		b.Fatalf("installer child: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, hwmPrefix); ok {
			kb, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("installer child: %q: %v", line, err)
			}
			return s, kb << 10
		}
	}
	b.Fatalf("installer child reported no VmHWM:\n%s", out)
	return s, 0
}

func runFloor(b *testing.B, url, slot string) sample {
	cmd := exec.Command("sh", "-c", `curl -sSf "$1" | zstd -d -q | dd of="$2" bs=4M iflag=fullblock conv=notrunc,fsync status=none`, "floor", url, slot)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("curl | zstd -d | dd: %v\n%s", err, out)
	}
	return sample{time.Since(start), cpuTime(cmd)}
}

// cpuTime is the CPU time of a finished command and the children it
// waited for.
func cpuTime(cmd *exec.Cmd) time.Duration {
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}
