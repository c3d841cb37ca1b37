package tpmtis_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/tests/tpmtis"
	"github.com/cairn-edge/cairn/tests/vmtest"
)

// rootEpoch is the SOURCE_DATE_EPOCH the image and end-to-end tests build
// the qemu-aarch64 root with, so that all of them share one cached root.
const rootEpoch = 1735689600

// guestResult starts the line the guest prints (internal/tpmguest).
const guestResult = "TPMGUEST-RESULT: "

func TestBuildRefusesAReleaseThatIsNotArm64(t *testing.T) {
	_, err := tpmtis.Build(context.Background(), "6.1.0-56-cloud-amd64", t.TempDir(), t.Logf)
	if err == nil || !strings.Contains(err.Error(), "6.1.0-56-cloud-amd64") {
		t.Fatalf("err = %v, want an error naming the amd64 release", err)
	}
}

// TestBuiltModuleGivesTheArm64GuestItsTPM builds tpm_tis.ko for the kernel
// of the qemu-aarch64 board's root, resolves the initramfs's TPM modules
// the way the image builder does, and boots that kernel in QEMU's virt
// machine with swtpm behind tpm-tis-device: the guest must get /dev/tpm0
// and /dev/tpmrm0 from a TPM 2.0.
func TestBuiltModuleGivesTheArm64GuestItsTPM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Debian root and a kernel module and boots QEMU; skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("mmdebstrap needs root")
	}
	for _, tool := range []string{"mmdebstrap", "make", "aarch64-linux-gnu-gcc-12", "swtpm", "qemu-system-aarch64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/install-deps.sh)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root := arm64Root(t, ctx)
	release := onlyEntry(t, filepath.Join(root, "lib/modules"))
	cache, err := vmtest.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	var ko string
	for _, call := range []string{"first", "second (cached)"} {
		start := time.Now()
		if ko, err = tpmtis.Build(ctx, release, cache, t.Logf); err != nil {
			t.Fatal(err)
		}
		t.Logf("timing: tpmtis.Build %s call: %v -> %s", call, time.Since(start).Round(time.Millisecond), ko)
	}
	mods := tpmModules(t, root, release, ko)
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	t.Logf("initramfs TPM modules, in load order: %v", names)
	if i, j := indexOf(names, "tpm_tis_core"), indexOf(names, "tpm_tis"); i < 0 || j < 0 || i > j {
		t.Fatalf("want tpm_tis_core before tpm_tis in %v", names)
	}
	start := time.Now()
	initrd := guestInitramfs(t, mods)
	t.Logf("timing: guest initramfs: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	result := bootWithTPM(t, ctx, filepath.Join(root, "boot", "vmlinuz-"+release), initrd)
	t.Logf("timing: QEMU boot with swtpm to the guest's result: %v", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"ok ", "tpm_version_major=2", "driver=tpm_tis ", "/dev/tpm0", "/dev/tpmrm0"} {
		if !strings.Contains(result+" ", want) {
			t.Errorf("guest result %q lacks %q", result, want)
		}
	}
}

// arm64Root is the cached Debian root of the qemu-aarch64 board, built the
// way images/disk and tests/e2e build it.
func arm64Root(t *testing.T, ctx context.Context) string {
	t.Helper()
	b, err := boards.Load("qemu-aarch64")
	if err != nil {
		t.Fatal(err)
	}
	deb, err := rootfs.ForBoard(b, "/etc/apt", rootEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if err := rootfs.EnableArch(b.Arch); err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	root, err := rootfs.Bootstrap(ctx, deb, filepath.Join(cache, "cairn", "rootfs"), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: qemu-aarch64 Debian root: %v", time.Since(start).Round(time.Millisecond))
	return root
}

func onlyEntry(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s: want one entry, got %d (%v)", dir, len(ents), err)
	}
	return ents[0].Name()
}

// tpmModules lays out the root kernel's modules.builtin and TPM drivers
// with ko under updates/, as `cairn image rootfs --module` does, and
// resolves rootfs.TPMModules from it as the initramfs builder does.
func tpmModules(t *testing.T, root, release, ko string) []kmod.Module {
	t.Helper()
	src := filepath.Join(root, "lib/modules", release)
	dst := filepath.Join(t.TempDir(), release)
	tpmDir := "kernel/drivers/char/tpm"
	drivers, err := os.ReadDir(filepath.Join(src, tpmDir))
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string]string{"modules.builtin": filepath.Join(src, "modules.builtin"), "updates/" + tpmtis.ModuleFile: ko}
	for _, d := range drivers {
		if !d.IsDir() {
			copies[filepath.Join(tpmDir, d.Name())] = filepath.Join(src, tpmDir, d.Name())
		}
	}
	for to, from := range copies {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, to), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mods, err := kmod.ResolveModules(dst, rootfs.TPMModules)
	if err != nil {
		t.Fatal(err)
	}
	return mods
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// guestInitramfs packs internal/tpmguest, built for arm64, as /init with
// the modules as /modules/NN-name.ko in load order.
func guestInitramfs(t *testing.T, mods []kmod.Module) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/tpmguest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build tpmguest: %v\n%s", err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("modules", 0o755),
		cpio.StaticFile("init", string(init), 0o755),
	}
	for i, m := range mods {
		recs = append(recs, cpio.StaticFile(fmt.Sprintf("modules/%02d-%s.ko", i, m.Name), string(m.Data), 0o644))
	}
	path := filepath.Join(dir, "initramfs.cpio")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := cpio.Newc.Writer(f)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	return path
}

// bootWithTPM boots kernel and initrd in QEMU's arm64 virt machine under
// TCG with a fresh swtpm as its tpm-tis-device, and returns what the guest
// reported after guestResult.
func bootWithTPM(t *testing.T, ctx context.Context, kernel, initrd string) string {
	t.Helper()
	state := t.TempDir()
	sock := filepath.Join(state, "swtpm.sock")
	swtpm := exec.CommandContext(ctx, "swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--ctrl", "type=unixio,path="+sock)
	swtpm.Stdout, swtpm.Stderr = os.Stderr, os.Stderr
	if err := swtpm.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { swtpm.Process.Kill(); swtpm.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm made no socket %s", sock)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	qemu := exec.CommandContext(ctx, "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57",
		"-accel", "tcg", "-m", "512", "-smp", "1", "-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyAMA0 panic=-1 rdinit=/init",
		"-chardev", "socket,id=chrtpm,path="+sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-tis-device,tpmdev=tpm0")
	out, err := qemu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	qemu.Stderr = qemu.Stdout
	qemu.WaitDelay = 5 * time.Second
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	result := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		t.Log(line)
		if i := strings.Index(line, guestResult); i >= 0 && result == "" {
			result = line[i+len(guestResult):]
		}
	}
	if err := qemu.Wait(); err != nil && result == "" {
		t.Fatalf("qemu: %v", err)
	}
	if result == "" {
		t.Fatal("the guest reported no result")
	}
	return result
}
