package initrd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	"github.com/cairn-edge/cairn/images/statecrypt"
	"github.com/cairn-edge/cairn/tests/vmtest"
)

// canary is what the tests store; it must never be found on the raw
// partition of an encrypted state.
var canary = []byte("cairn state canary: plaintext that only dm-crypt may see")

// TestEncryptedState runs the encrypted state partition against the
// device-mapper of a real Debian kernel in a QEMU guest (the host kernel
// has none), over loop devices, with a swtpm started inside the guest.
// One guest boot serves every subtest.
func TestEncryptedState(t *testing.T) {
	if !vmtest.InGuest() {
		if testing.Short() {
			t.Skip("boots a QEMU guest with swtpm; skipped under -short")
		}
		vmtest.Run(t, vmtest.Guest{
			Run:       "^TestEncryptedState$",
			Modules:   []string{"loop", "dm_crypt", "xts", "ecb"},
			Tools:     []string{"mkfs.ext4", "e2fsck", "resize2fs"},
			Files:     swtpmFiles(t),
			MemoryMiB: 1024,
			Timeout:   6 * time.Minute,
		})
		return
	}
	// mountState runs the root's /sbin tools; vmtest puts tools in /bin.
	if _, err := os.Lstat("/sbin"); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink("bin", "/sbin"); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("payload on disk is ciphertext", testPayloadIsCiphertext)
	t.Run("first boot creates, later boots open and grow", testFirstAndLaterBoots)
	t.Run("modified slot gets tmpfs and the partition is untouched", testModifiedSlotLeavesStateAlone)
	t.Run("first boot of an unapproved slot writes nothing", testUnapprovedFirstBootWritesNothing)
	t.Run("no TPM keeps plaintext state", testNoTPMKeepsPlaintext)
	t.Run("TPM that fails never gets plaintext state", testBrokenTPMWritesNothing)
}

// swtpmFiles ships swtpm into the guest with the libraries ldd names for
// it: vmtest's Tools looks for libraries in the standard directories only,
// and swtpm keeps one in its own RUNPATH directory.
func swtpmFiles(t *testing.T) map[string]string {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm not installed (scripts/install-deps.sh): %v", err)
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := map[string]string{"/bin/swtpm": bin}
	for _, w := range strings.Fields(string(out)) {
		if strings.HasPrefix(w, "/") {
			files[w] = w
		}
	}
	return files
}

// loopDisk makes a read-write loop device over a new zeroed file of size
// bytes and returns both; the loop device goes away with the test.
func loopDisk(t *testing.T, size int64) (file, dev string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "state.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	dev, err := attachLoop(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f, err := os.Open(dev); err == nil {
			unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
			f.Close()
		}
	})
	return file, dev
}

func fileSum(t *testing.T, file string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func testPayloadIsCiphertext(t *testing.T) {
	file, dev := loopDisk(t, 8<<20)
	key := make([]byte, statecrypt.KeySize)
	rand.Read(key)
	plain := bytes.Repeat(canary, (1<<20)/len(canary))
	mapped := func(key []byte, do func(*os.File)) {
		t.Helper()
		node, err := SetupCrypt("/dev", "cairn-test", dev, key, statecrypt.PayloadOffset)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(node, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		do(f)
		f.Close()
		if err := RemoveCrypt("/dev", "cairn-test"); err != nil {
			t.Fatal(err)
		}
	}
	mapped(key, func(f *os.File) {
		if fi, err := deviceBytes(f.Name()); err != nil || fi != 7<<20 {
			t.Errorf("mapping is %d bytes (%v), want the 7 MiB after the payload offset", fi, err)
		}
		if _, err := f.WriteAt(plain, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	})
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	payload := raw[statecrypt.PayloadOffset : statecrypt.PayloadOffset+len(plain)]
	if bytes.Contains(raw, canary) || bytes.Equal(payload, plain) || bytes.Equal(payload, make([]byte, len(plain))) {
		t.Fatal("the raw partition shows the plaintext, or nothing was written")
	}
	mapped(key, func(f *os.File) {
		got := make([]byte, len(plain))
		if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("reopened with the key: read back %d differing bytes (%v)", len(got)-commonPrefix(got, plain), err)
		}
	})
	wrong := bytes.Clone(key)
	wrong[0] ^= 1
	mapped(wrong, func(f *os.File) {
		got := make([]byte, len(plain))
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(got, canary) {
			t.Error("a wrong key reads the plaintext")
		}
	})
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// device is a machine with a swtpm and a release signed by its release
// key in slot B, booted as cairn-init boots it: PCRs start over, the slot
// is measured, then the state partition is opened.
type device struct {
	t        *testing.T
	machine  *tpmtest.Machine
	key      *ecdsa.PrivateKey
	signed   tpm.SlotIdentity // the release the footer's policies approve
	approved []*tpm.PolicySignature
	open     *tpm.TPM
}

func newDevice(t *testing.T) *device {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := signedslot.Write(t, filepath.Join(t.TempDir(), "slot.img"), key, "1.4.0", "qemu-x86_64")
	id, err := f.Identity("B")
	if err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, machine: tpmtest.NewMachine(t), key: key, signed: id, approved: f.PolicySignatures()}
	t.Cleanup(d.closeTPM)
	return d
}

// modified is the signed release with one changed byte of its root file
// system: another root hash.
func (d *device) modified() tpm.SlotIdentity {
	id := d.signed
	id.RootHash = bytes.Clone(id.RootHash)
	id.RootHash[0] ^= 1
	return id
}

func (d *device) closeTPM() {
	if d.open != nil {
		d.open.Close()
		d.open = nil
	}
}

// boot power-cycles the TPM and measures id into it.
func (d *device) boot(id tpm.SlotIdentity, encrypt bool) StateCrypt {
	d.t.Helper()
	d.closeTPM()
	d.machine.Reboot()
	tp, err := tpm.Open(d.t.Context(), d.machine.Addr())
	if err != nil {
		d.t.Fatal(err)
	}
	d.open = tp
	if _, err := tp.Measure(filepath.Join(d.t.TempDir(), "measurements.json"), id); err != nil {
		d.t.Fatal(err)
	}
	return StateCrypt{Encrypt: encrypt, TPM: tp, PolicyKey: &d.key.PublicKey, Approved: d.approved, DevDir: "/dev"}
}

// mountGuestVar runs mountVar for the guest's /var and returns its report
// and the file system type of /var; unmountGuestVar undoes it.
func mountGuestVar(t *testing.T, dev string, s StateCrypt) (statecrypt.Report, int64) {
	t.Helper()
	report := filepath.Join(t.TempDir(), "state.json")
	if err := mountVar("/", dev, report, s, t.Logf); err != nil {
		t.Fatal(err)
	}
	rep, err := statecrypt.ReadReport(report)
	if err != nil {
		t.Fatalf("state report: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/var", &st); err != nil {
		t.Fatal(err)
	}
	return *rep, st.Type
}

func unmountGuestVar(t *testing.T, rep statecrypt.Report) {
	t.Helper()
	if err := unix.Unmount("/var", 0); err != nil {
		t.Fatal(err)
	}
	if rep.Mapped != "" {
		if err := RemoveCrypt("/dev", StateCryptName); err != nil {
			t.Fatal(err)
		}
	}
}

const secretFile = "/var/lib/cairn/canary"

func testFirstAndLaterBoots(t *testing.T) {
	d := newDevice(t)
	file, dev := loopDisk(t, 48<<20)

	rep, fsType := mountGuestVar(t, dev, d.boot(d.signed, true))
	if !rep.Encrypted || !rep.Created || rep.Var != statecrypt.VarPartition || rep.Mapped != "/dev/mapper/"+StateCryptName || fsType != unix.EXT4_SUPER_MAGIC {
		t.Fatalf("first boot: report %+v, /var type %#x", rep, fsType)
	}
	if err := os.WriteFile(secretFile, canary, 0o600); err != nil {
		t.Fatal(err)
	}
	unmountGuestVar(t, rep)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := statecrypt.Decode(raw); err != nil {
		t.Fatalf("header after the first boot: %v", err)
	}
	if bytes.Contains(raw, canary) {
		t.Fatal("the raw partition holds the plaintext of a file on /var")
	}

	rep, _ = mountGuestVar(t, dev, d.boot(d.signed, true))
	if !rep.Encrypted || rep.Created || rep.Var != statecrypt.VarPartition {
		t.Fatalf("second boot: report %+v", rep)
	}
	if got, err := os.ReadFile(secretFile); err != nil || !bytes.Equal(got, canary) {
		t.Fatalf("second boot: %s = %q, %v", secretFile, got, err)
	}
	unmountGuestVar(t, rep)

	// The disk grew (flashed onto a larger medium); the board's switch is
	// off now, and the header still says the partition is encrypted.
	if err := os.Truncate(file, 80<<20); err != nil {
		t.Fatal(err)
	}
	loop, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_CAPACITY, 0)
	loop.Close()
	if err != nil {
		t.Fatalf("LOOP_SET_CAPACITY: %v", err)
	}
	rep, _ = mountGuestVar(t, dev, d.boot(d.signed, false))
	if !rep.Encrypted || rep.Var != statecrypt.VarPartition {
		t.Fatalf("boot after growing, switch off: report %+v", rep)
	}
	if n, err := ext4Bytes(rep.Mapped); err != nil || n < 79<<20-growMargin {
		t.Errorf("file system is %d bytes (%v) after growing to 80 MiB", n, err)
	}
	if got, err := os.ReadFile(secretFile); err != nil || !bytes.Equal(got, canary) {
		t.Errorf("after growing: %s = %q, %v", secretFile, got, err)
	}
	unmountGuestVar(t, rep)
}

func testModifiedSlotLeavesStateAlone(t *testing.T) {
	d := newDevice(t)
	file, dev := loopDisk(t, 32<<20)
	rep, _ := mountGuestVar(t, dev, d.boot(d.signed, true))
	if err := os.WriteFile(secretFile, canary, 0o600); err != nil {
		t.Fatal(err)
	}
	unmountGuestVar(t, rep)
	before := fileSum(t, file)

	rep, fsType := mountGuestVar(t, dev, d.boot(d.modified(), true))
	if rep.Var != statecrypt.VarTmpfs || fsType != unix.TMPFS_MAGIC || !strings.Contains(rep.Error, tpm.ErrNoApprovedPolicy.Error()) {
		t.Errorf("modified slot: report %+v, /var type %#x; want a tmpfs and the reason", rep, fsType)
	}
	if _, err := os.Stat(secretFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("modified slot sees %s: %v", secretFile, err)
	}
	unmountGuestVar(t, rep)
	if fileSum(t, file) != before {
		t.Fatal("a boot that may not unseal changed the state partition")
	}

	rep, _ = mountGuestVar(t, dev, d.boot(d.signed, true))
	if got, err := os.ReadFile(secretFile); err != nil || !bytes.Equal(got, canary) {
		t.Errorf("signed slot after the modified one: %s = %q, %v", secretFile, got, err)
	}
	unmountGuestVar(t, rep)
}

func testUnapprovedFirstBootWritesNothing(t *testing.T) {
	d := newDevice(t)
	file, dev := loopDisk(t, 16<<20)
	rep, fsType := mountGuestVar(t, dev, d.boot(d.modified(), true))
	if rep.Var != statecrypt.VarTmpfs || fsType != unix.TMPFS_MAGIC || rep.Error == "" {
		t.Errorf("report %+v, /var type %#x; want a tmpfs and the reason", rep, fsType)
	}
	unmountGuestVar(t, rep)
	if fileSum(t, file) != sha256.Sum256(make([]byte, 16<<20)) {
		t.Error("a first boot whose key would not unseal wrote to the partition")
	}
}

func testNoTPMKeepsPlaintext(t *testing.T) {
	_, dev := loopDisk(t, 16<<20)
	rep, fsType := mountGuestVar(t, dev, StateCrypt{Encrypt: true, DevDir: "/dev"})
	if rep.Encrypted || rep.Var != statecrypt.VarPartition || rep.Note == "" || fsType != unix.EXT4_SUPER_MAGIC {
		t.Errorf("report %+v, /var type %#x; want plaintext ext4 with a note", rep, fsType)
	}
	unmountGuestVar(t, rep)
	if ok, err := hasExt4(dev); err != nil || !ok {
		t.Errorf("partition holds ext4: %v, %v", ok, err)
	}
}

func testBrokenTPMWritesNothing(t *testing.T) {
	file, dev := loopDisk(t, 16<<20)
	s := StateCrypt{Encrypt: true, TPMErr: errors.New("tpm /dev/tpmrm0: startup: failure"), DevDir: "/dev"}
	rep, fsType := mountGuestVar(t, dev, s)
	if rep.Var != statecrypt.VarTmpfs || fsType != unix.TMPFS_MAGIC || !strings.Contains(rep.Error, "startup: failure") {
		t.Errorf("report %+v, /var type %#x; want a tmpfs and the TPM's error", rep, fsType)
	}
	unmountGuestVar(t, rep)
	if fileSum(t, file) != sha256.Sum256(make([]byte, 16<<20)) {
		t.Error("the partition was written")
	}
}
