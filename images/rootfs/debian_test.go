package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourcesFromDeb822AndOneLineFiles(t *testing.T) {
	apt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(apt, "sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	deb822 := "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\n" +
		"Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n\n" +
		"Types: deb\nURIs: http://mirror.example/old\nSuites: bullseye\nComponents: main\n"
	oneLine := "# comment\ndeb [arch=amd64 signed-by=/s.gpg] http://security.example/debian-security bookworm-security main\n"
	for name, text := range map[string]string{"sources.list.d/debian.sources": deb822, "sources.list": oneLine} {
		if err := os.WriteFile(filepath.Join(apt, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Sources(apt, []string{"main", "non-free-firmware"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"deb [signed-by=/s.gpg] http://security.example/debian-security bookworm-security main non-free-firmware",
		"deb [signed-by=/k.gpg] http://mirror.example/debian bookworm main non-free-firmware",
		"deb [signed-by=/k.gpg] http://mirror.example/debian bookworm-updates main non-free-firmware",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Sources =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := Sources(t.TempDir(), []string{"main"}); err == nil {
		t.Error("no sources gave no error")
	}
}

func TestDebianKeyChangesWithItsInputs(t *testing.T) {
	d := Debian{Arch: "amd64", Packages: []string{"systemd"}, Sources: []string{"deb x bookworm main"}, SourceDateEpoch: 1}
	e := d
	e.Packages = []string{"systemd", "kmod"}
	if d.Key() == e.Key() || d.Key() != (Debian{Arch: "amd64", Packages: []string{"systemd"}, Sources: []string{"deb x bookworm main"}, SourceDateEpoch: 1}).Key() {
		t.Error("the cache key does not follow the inputs")
	}
}
