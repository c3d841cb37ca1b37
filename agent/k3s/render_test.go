package k3s

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func exampleSpec(t *testing.T, path string) Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "cloud-init", "examples", path))
	if err != nil {
		t.Fatal(err)
	}
	ud, err := cloudinit.ParseUserData(path, data)
	if err != nil {
		t.Fatalf("example %s: %v", path, err)
	}
	if ud.Cairn.K3s == nil {
		t.Fatalf("example %s has no cairn.k3s", path)
	}
	return SpecFromConfig(ud.Cairn.K3s)
}

// fullRegistries uses every registries.yaml field the config types do not
// carry yet: rewrites, credentials and TLS.
func fullRegistries() Registries {
	return Registries{
		Mirrors: map[string]Mirror{
			"docker.io": {Endpoints: []string{"https://mirror.example:5000", "https://registry-1.docker.io"},
				Rewrites: map[string]string{"^rancher/(.*)": "mirrored/rancher/$1"}},
			"registry.example": {Endpoints: []string{"https://registry.example"}},
		},
		Configs: map[string]RegistryConfig{
			"mirror.example:5000": {
				Auth: &RegistryAuth{Username: "puller", Password: "s3cret-registry-password"},
				TLS:  &RegistryTLS{CAFile: "/etc/cairn/mirror-ca.pem", CertFile: "/etc/cairn/client.pem", KeyFile: "/etc/cairn/client.key"},
			},
			"registry.example": {TLS: &RegistryTLS{InsecureSkipVerify: true}},
		},
	}
}

func TestRenderMatchesGoldenFiles(t *testing.T) {
	node := Node{OSVersion: "1.4.2", Slot: "a"}
	cases := map[string]Spec{
		"store-box":     exampleSpec(t, "store-box.yaml"),
		"factory-agent": exampleSpec(t, "factory-agent/user-data"),
		"ha-server-1":   exampleSpec(t, "ha-cluster/server-1.yaml"),
		"ha-server-2":   exampleSpec(t, "ha-cluster/server-2.yaml"),
		"full-registries": {Role: RoleServer, Registries: fullRegistries(),
			ExtraArgs: []string{"--disable=traefik", "--kubelet-arg=max-pods=200", "--disable=servicelb",
				"--write-kubeconfig-mode=0640", "--secrets-encryption", "--flannel-backend=none"}},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			files, err := Render(spec, node, DefaultPaths())
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				golden := filepath.Join("testdata", "golden", name, filepath.Base(f.Path))
				if *update {
					writeGolden(t, golden, f.Data)
					continue
				}
				want, err := os.ReadFile(golden)
				if errors.Is(err, os.ErrNotExist) && f.Data == nil {
					continue
				}
				if err != nil {
					t.Fatalf("%s rendered but no golden file: %v", f.Path, err)
				}
				if f.Data == nil {
					t.Fatalf("%s not rendered, but golden file %s exists", f.Path, golden)
				}
				if string(want) != string(f.Data) {
					t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", f.Path, golden, f.Data, want)
				}
			}
		})
	}
}

func writeGolden(t *testing.T, path string, data []byte) {
	t.Helper()
	if data == nil {
		os.Remove(path)
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRenderRejectsBadSpecs(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"no role", Spec{}, "role"},
		{"agent without server", Spec{Role: RoleAgent, Token: "x"}, "server"},
		{"agent with cluster-init", Spec{Role: RoleAgent, Server: "https://s:6443", Token: "x", ClusterInit: true}, "cluster_init"},
		{"join without token", Spec{Role: RoleServer, Server: "https://s:6443"}, "needs a token"},
		{"plain http server", Spec{Role: RoleAgent, Server: "http://s:6443", Token: "x"}, "https"},
		{"token and token file", Spec{Role: RoleServer, Token: "x", TokenFile: "/t"}, "not both"},
		{"relative token file", Spec{Role: RoleServer, TokenFile: "t"}, "absolute"},
		{"extra arg sets server", Spec{Role: RoleServer, ExtraArgs: []string{"--server=https://x:6443"}}, "extra_args[0]: --server is set through server"},
		{"extra arg sets token", Spec{Role: RoleServer, ExtraArgs: []string{"--tls-san=a", "--token=abc"}}, "extra_args[1]"},
		{"extra arg not a flag", Spec{Role: RoleServer, ExtraArgs: []string{"tls-san=a"}}, "not a flag"},
		{"single flag twice", Spec{Role: RoleServer, ExtraArgs: []string{"--data-dir=/a", "--data-dir=/b"}}, "given twice"},
		{"Cairn's label", Spec{Role: RoleServer, NodeLabels: []string{"cairn.dev/slot=b"}}, "set by Cairn"},
		{"relative image", Spec{Role: RoleServer, AirgapImages: []string{"img.tar"}}, "airgap_images[0]"},
		{"mirror without endpoints", Spec{Role: RoleServer, Registries: Registries{Mirrors: map[string]Mirror{"docker.io": {}}}}, "registries[docker.io]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Render(c.spec, Node{}, DefaultPaths())
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Render: %v, want ErrInvalidSpec mentioning %q", err, c.want)
			}
		})
	}
}

func TestNodeLabelsCarryOSVersionAndSlot(t *testing.T) {
	files, err := Render(Spec{Role: RoleServer}, Node{OSVersion: "2.0.0-rc.1+build.7", Slot: "b"}, DefaultPaths())
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(files[0].Data)
	for _, want := range []string{"cairn.dev/os-version=2.0.0-rc.1_build.7", "cairn.dev/slot=b"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config.yaml lacks %s:\n%s", want, cfg)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	spec := Spec{Role: RoleAgent, Server: "https://s:6443", Token: "K10-very-secret"}
	spec.Registries = fullRegistries()
	for _, s := range []string{fmt.Sprint(spec), fmt.Sprintf("%v %+v %#v", spec, spec, spec)} {
		if strings.Contains(s, "K10-very-secret") || strings.Contains(s, "s3cret-registry-password") {
			t.Fatalf("a secret leaks through fmt: %s", s)
		}
	}
	_, err := Render(Spec{Role: RoleServer, Token: "K10-very-secret", ExtraArgs: []string{"--token=K10-very-secret"}}, Node{}, DefaultPaths())
	if err == nil || strings.Contains(err.Error(), "K10-very-secret") {
		t.Fatalf("error %v leaks the token or is missing", err)
	}
}

func tempPaths(dir string) Paths {
	return Paths{
		Config:     filepath.Join(dir, "etc", "config.yaml"),
		Registries: filepath.Join(dir, "etc", "registries.yaml"),
		Token:      filepath.Join(dir, "var", "token"),
		ImageList:  filepath.Join(dir, "var", "airgap-images.list"),
	}
}

func TestApplyRestartsOnlyWhenK3sInputsChange(t *testing.T) {
	p := tempPaths(t.TempDir())
	node := Node{OSVersion: "1.0.0", Slot: "a"}
	spec := Spec{Role: RoleServer, Token: "tok", AirgapImages: []string{"/var/images/a.tar"}}
	apply := func(s Spec, n Node) Changes {
		t.Helper()
		files, err := Render(s, n, p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Apply(files)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := apply(spec, node); !c.Restart || !c.Images || len(c.Paths) != 3 {
		t.Fatalf("first apply: %+v, want config, token and image list written", c)
	}
	st, _ := os.Stat(p.Config)
	before := st.ModTime()
	if c := apply(spec, node); c.Restart || c.Images || len(c.Paths) != 0 {
		t.Fatalf("second apply of the same config: %+v, want no change", c)
	}
	if st, _ := os.Stat(p.Config); !st.ModTime().Equal(before) {
		t.Fatal("unchanged config.yaml was rewritten")
	}
	spec.AirgapImages = append(spec.AirgapImages, "/var/images/b.tar.zst")
	if c := apply(spec, node); c.Restart || !c.Images {
		t.Fatalf("new image only: %+v, want images but no restart", c)
	}
	spec.Token = "tok2"
	if c := apply(spec, node); !c.Restart || len(c.Paths) != 1 || c.Paths[0] != p.Token {
		t.Fatalf("token change: %+v, want a restart for the token file only", c)
	}
	spec.Registries = fullRegistries()
	if c := apply(spec, node); !c.Restart || len(c.Paths) != 2 {
		t.Fatalf("registries added: %+v, want config.yaml and registries.yaml", c)
	}
	spec.Registries = Registries{}
	if c := apply(spec, node); !c.Restart {
		t.Fatalf("registries removed: %+v, want a restart", c)
	}
	if _, err := os.Stat(p.Registries); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("registries.yaml left behind: %v", err)
	}
	if err := os.Chmod(p.Token, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := apply(spec, node); !c.Restart {
		t.Fatalf("token file made world-readable: %+v, want it rewritten", c)
	}
	for _, f := range []string{p.Token, p.Config} {
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if c := apply(spec, Node{OSVersion: "1.1.0", Slot: "b"}); !c.Restart {
		t.Fatalf("new OS version: %+v, want a restart so the labels follow", c)
	}
}

func TestApplyLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	p := tempPaths(dir)
	files, err := Render(Spec{Role: RoleServer, Token: "tok"}, Node{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(files); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if strings.Contains(filepath.Base(path), ".tmp") {
			t.Errorf("temp file left: %s", path)
		}
		return nil
	})
}
