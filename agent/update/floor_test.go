package update

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/Masterminds/semver/v3"
)

func TestVersionFloorOnlyGoesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "version-floor")
	f := NewVersionFloor(path)
	if v, err := f.Get(); v != nil || err != nil {
		t.Fatalf("fresh floor = %v, %v; want none", v, err)
	}
	if err := f.Raise(semver.MustParse("1.2.0")); err != nil {
		t.Fatal(err)
	}
	if err := f.Raise(semver.MustParse("1.1.9")); !errors.Is(err, ErrBelowVersionFloor) {
		t.Fatalf("lowering the floor = %v, want ErrBelowVersionFloor", err)
	}
	if err := f.Check(semver.MustParse("1.2.0")); err != nil {
		t.Fatalf("release at the floor refused: %v", err)
	}
	if err := f.Check(semver.MustParse("1.0.0")); !errors.Is(err, ErrBelowVersionFloor) {
		t.Fatalf("Check(1.0.0) = %v, want ErrBelowVersionFloor", err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != "1.2.0\n" {
		t.Fatalf("floor file %q", data)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left beside the floor: %v", entries)
	}
}

func TestDamagedVersionFloorIsAnErrorNotAMissingFloor(t *testing.T) {
	for _, content := range []string{"", "1.2.0", "one\n", "1.2\n"} {
		path := filepath.Join(t.TempDir(), "version-floor")
		os.WriteFile(path, []byte(content), 0o644)
		if v, err := NewVersionFloor(path).Get(); err == nil {
			t.Errorf("floor file %q read as %v", content, v)
		}
	}
}
