package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	"github.com/cairn-edge/cairn/images/footer"
)

// machine is a TPM that keeps its seeds across power cycles, as the
// device's does: open reaches it, reboot power-cycles it (PCRs back to zero).
type machine struct {
	open   func(context.Context) (*tpm.TPM, error)
	reboot func()
}

var machines = []struct {
	name  string
	start func(t *testing.T) machine
}{
	{"simulator", startSimulator},
	{"swtpm", startSwtpm},
}

// keepOpen lets MeasuredBoot close its TPM after each use without closing
// the simulator, which would lose its state.
type keepOpen struct{ io.ReadWriter }

func (keepOpen) Close() error { return nil }

func startSimulator(t *testing.T) machine {
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return machine{
		open: func(context.Context) (*tpm.TPM, error) {
			return tpm.New(transport.FromReadWriteCloser(keepOpen{sim})), nil
		},
		reboot: func() {
			if err := sim.Reset(); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func startSwtpm(t *testing.T) machine {
	m := tpmtest.NewMachine(t)
	return machine{
		open:   func(ctx context.Context) (*tpm.TPM, error) { return tpm.Open(ctx, m.Addr()) },
		reboot: m.Reboot,
	}
}

// tokenDevice is a measured device running k3s with a configured token.
type tokenDevice struct {
	*measuredDevice
	tpm   machine
	paths k3s.Paths
	files agent.K3sTokenFiles
}

const testToken = "K10c0ffee::server:0123456789abcdef"

func newTokenDevice(t *testing.T, m machine) *tokenDevice {
	dir := t.TempDir()
	return &tokenDevice{
		measuredDevice: newMeasuredDevice(t), tpm: m,
		paths: k3s.Paths{
			Config: filepath.Join(dir, "etc/config.yaml"), Registries: filepath.Join(dir, "etc/registries.yaml"),
			Token: filepath.Join(dir, "var/k3s/token"), ImageList: filepath.Join(dir, "var/k3s/airgap-images.list"),
		},
		files: agent.K3sTokenFiles{Sealed: filepath.Join(dir, "var/k3s/token.sealed"), Unsealed: filepath.Join(dir, "run/k3s/token")},
	}
}

// powerOn power-cycles the TPM (tmpfs goes with it), measures what cairn-init
// measures for slot B, then prepares and renders k3s's files as the agent
// does. It returns the status and the rendered config.
func (d *tokenDevice) powerOn(t *testing.T, measured tpm.SlotIdentity) (*agent.K3sTokenStatus, string, error) {
	t.Helper()
	d.tpm.reboot()
	os.RemoveAll(filepath.Dir(d.files.Unsealed))
	tp, err := d.tpm.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Measure(filepath.Join(d.root, tpm.DefaultLogPath), measured); err != nil {
		t.Fatal(err)
	}
	tp.Close()

	m := agent.MeasuredBoot{Root: d.root, Open: d.tpm.open}
	spec, paths := k3s.Spec{Role: k3s.RoleServer, Token: testToken}, d.paths
	st, err := m.PrepareK3sToken(context.Background(), d.boot, &spec, &paths, d.files)
	if err != nil {
		return st, "", err
	}
	files, err := k3s.Render(spec, k3s.Node{}, paths)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k3s.Apply(files); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(paths.Config)
	if err != nil {
		t.Fatal(err)
	}
	return st, string(cfg), nil
}

// slotB is what cairn-init measures for f's release booted from slot B.
func slotB(t *testing.T, f *footer.Footer) tpm.SlotIdentity {
	t.Helper()
	id, err := f.Identity("B")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkUnsealed checks that k3s reads the token from /run, 0600, and that
// /var holds it sealed only.
func (d *tokenDevice) checkUnsealed(t *testing.T, st *agent.K3sTokenStatus, cfg string) {
	t.Helper()
	if st.Kept != agent.TokenSealed || st.Error != "" {
		t.Fatalf("token status %+v, want sealed", st)
	}
	if got := readFile(t, d.files.Unsealed); string(got) != testToken+"\n" {
		t.Fatalf("unsealed token file holds %q", got)
	}
	if fi, _ := os.Stat(d.files.Unsealed); fi.Mode().Perm() != 0o600 {
		t.Errorf("unsealed token file mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(cfg, "token-file: "+d.files.Unsealed) {
		t.Errorf("k3s config does not point at the unsealed token:\n%s", cfg)
	}
	if _, err := os.Stat(d.paths.Token); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plaintext token on /var: %v", err)
	}
	sealed := readFile(t, d.files.Sealed)
	if _, err := tpm.ParseSealed(sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(testToken)) || bytes.Contains(sealed, []byte("0123456789abcdef")) {
		t.Fatal("the sealed file holds the token in plaintext")
	}
}

// TestK3sTokenSealedUnsealsForSignedReleasesOnly walks a device through
// three boots: the first seals the token, a newly installed signed release
// unseals it without a re-seal, and a slot with one byte flipped gets no
// token, so k3s gets nothing to start with.
func TestK3sTokenSealedUnsealsForSignedReleasesOnly(t *testing.T) {
	for _, mc := range machines {
		t.Run(mc.name, func(t *testing.T) {
			d := newTokenDevice(t, mc.start(t))
			// What an agent without TPM support left on /var.
			if err := os.MkdirAll(filepath.Dir(d.paths.Token), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(d.paths.Token, []byte(testToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			st, cfg, err := d.powerOn(t, slotB(t, d.footer))
			if err != nil {
				t.Fatalf("first boot: %v", err)
			}
			d.checkUnsealed(t, st, cfg)
			sealed := readFile(t, d.files.Sealed)

			// The updater writes release 1.4.0 into slot B: its footer carries
			// the new policy signatures; the device reboots into it.
			next := signedslot.Write(t, filepath.Join(d.root, d.boot.Device), d.key, "1.4.0", "qemu-x86_64")
			st, cfg, err = d.powerOn(t, slotB(t, next))
			if err != nil {
				t.Fatalf("boot of the new signed release: %v", err)
			}
			d.checkUnsealed(t, st, cfg)
			if !bytes.Equal(readFile(t, d.files.Sealed), sealed) {
				t.Error("the token was sealed again for the new release")
			}

			// One byte of the slot flipped: cairn-init measures another
			// root hash than any signed release has.
			tampered := slotB(t, next)
			tampered.RootHash[7] ^= 0x01
			d.checkWithheld(t, tampered, sealed, "slot B, release 1.4.0")
		})
	}
}

// checkWithheld boots measuring id and checks that the token is withheld
// because no policy approves the measurement, the reason naming want (slot
// and release), and that the sealed file is left as it was.
func (d *tokenDevice) checkWithheld(t *testing.T, id tpm.SlotIdentity, sealed []byte, want string) {
	t.Helper()
	st, _, err := d.powerOn(t, id)
	if !errors.Is(err, agent.ErrTokenSealed) || !errors.Is(err, tpm.ErrNoApprovedPolicy) {
		t.Fatalf("%v, want ErrTokenSealed and tpm.ErrNoApprovedPolicy", err)
	}
	if st.Kept != agent.TokenWithheld || !strings.Contains(st.Error, want) {
		t.Errorf("status %+v, want withheld for %s", st, want)
	}
	if _, err := os.Stat(d.files.Unsealed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a token for k3s: %v", err)
	}
	if !bytes.Equal(readFile(t, d.files.Sealed), sealed) {
		t.Error("the boot replaced the sealed token")
	}
}

// TestK3sTokenOfAFlippedFooterByteIsWithheld flips one byte of the slot
// on disk, in its footer: the agent finds no signed release there to take
// policy signatures from.
func TestK3sTokenOfAFlippedFooterByteIsWithheld(t *testing.T) {
	d := newTokenDevice(t, startSwtpm(t))
	if _, _, err := d.powerOn(t, slotB(t, d.footer)); err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(d.root, d.boot.Device)
	img := readFile(t, dev)
	img[int64(len(img))-footer.Size+100] ^= 0x40
	if err := os.WriteFile(dev, img, 0o644); err != nil {
		t.Fatal(err)
	}
	st, _, err := d.powerOn(t, slotB(t, d.footer))
	if !errors.Is(err, agent.ErrTokenSealed) {
		t.Fatalf("flipped footer byte: %v, want ErrTokenSealed", err)
	}
	if st.Kept != agent.TokenWithheld {
		t.Errorf("status %+v, want withheld", st)
	}
	if _, err := os.Stat(d.files.Unsealed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a token for k3s with a flipped footer byte: %v", err)
	}
}

// TestK3sTokenChangedByTheOperatorIsSealedAgain: a new token_file value on
// a trusted boot replaces the sealed one.
func TestK3sTokenChangedByTheOperatorIsSealedAgain(t *testing.T) {
	d := newTokenDevice(t, startSwtpm(t))
	if _, _, err := d.powerOn(t, slotB(t, d.footer)); err != nil {
		t.Fatal(err)
	}
	m := agent.MeasuredBoot{Root: d.root, Open: d.tpm.open}
	tokFile := filepath.Join(t.TempDir(), "operator-token")
	if err := os.WriteFile(tokFile, []byte("K10new::server:fedcba\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec, paths := k3s.Spec{Role: k3s.RoleServer, TokenFile: tokFile}, d.paths
	st, err := m.PrepareK3sToken(context.Background(), d.boot, &spec, &paths, d.files)
	if err != nil || st.Kept != agent.TokenSealed {
		t.Fatalf("%+v, %v", st, err)
	}
	if spec.Token != "K10new::server:fedcba" || spec.TokenFile != "" || paths.Token != d.files.Unsealed {
		t.Fatalf("spec token %v, token file %q, path %q: want the token_file's value rendered to /run", spec.Token == "", spec.TokenFile, paths.Token)
	}
	tp, err := d.tpm.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	s, err := tpm.ParseSealed(readFile(t, d.files.Sealed))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tp.Unseal(s, &d.key.PublicKey, d.footer.PolicySignatures())
	if err != nil || string(got) != "K10new::server:fedcba" {
		t.Fatalf("sealed token now %q, %v; want the new one", got, err)
	}
}

func TestK3sTokenWithoutTPM(t *testing.T) {
	for _, tc := range []struct {
		name       string
		token      k3s.Secret
		requireTPM bool
		kept       string
		err        error
	}{
		{name: "plaintext on /var", token: testToken, kept: agent.TokenPlaintext},
		{name: "TPM required", token: testToken, requireTPM: true, kept: agent.TokenWithheld, err: agent.ErrTokenNeedsTPM},
		{name: "no token", kept: agent.TokenNone},
		{name: "no token, TPM required", requireTPM: true, kept: agent.TokenNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTokenDevice(t, machine{})
			m := agent.MeasuredBoot{Root: d.root, RequireTPM: tc.requireTPM}
			spec, paths := k3s.Spec{Role: k3s.RoleServer, Token: tc.token}, d.paths
			st, err := m.PrepareK3sToken(context.Background(), d.boot, &spec, &paths, d.files)
			if !errors.Is(err, tc.err) || st.Kept != tc.kept {
				t.Fatalf("status %+v, error %v; want %s, %v", st, err, tc.kept, tc.err)
			}
			if paths != d.paths || spec.Token != tc.token {
				t.Errorf("without TPM the spec or paths changed: %+v", paths)
			}
			var text bytes.Buffer
			(&agent.Status{K3s: &agent.K3sStatus{Token: st}}).WriteText(&text)
			if !strings.Contains(text.String(), "k3s token: "+st.Summary) {
				t.Errorf("status text lacks the token line:\n%s", text.String())
			}
			if tc.kept == agent.TokenPlaintext && !strings.Contains(st.Summary, "(no TPM)") {
				t.Errorf("summary %q does not say there is no TPM", st.Summary)
			}
			if _, err := os.Stat(d.files.Sealed); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("sealed without a TPM: %v", err)
			}
		})
	}
}
