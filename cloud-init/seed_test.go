package cloudinit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

const (
	testUserData = "#cloud-config\nhostname: store-1\n"
	testMetaData = "instance-id: iid-store-1\nlocal-hostname: store-1\n"
	testNetwork  = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
)

// needTool finds an external tool the test uses as a real component; it
// skips only in -short runs and fails otherwise, so CI never passes silently.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (scripts/install-deps.sh)", name)
		}
		t.Fatalf("%s not installed: run scripts/install-deps.sh", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// writeSeedFiles writes the three NoCloud files into a fresh directory.
func writeSeedFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var allSeedFiles = map[string]string{"user-data": testUserData, "meta-data": testMetaData, "network-config": testNetwork}

// makeFAT builds a FAT volume the way an operator's tools do: mkfs.vfat, then
// mcopy. sizeKiB picks the FAT variant mkfs.vfat chooses.
func makeFAT(t *testing.T, label string, sizeKiB int, fatBits string, files map[string]string) string {
	t.Helper()
	needTool(t, "mkfs.vfat")
	needTool(t, "mcopy")
	img := filepath.Join(t.TempDir(), "cidata.img")
	args := []string{"-C", "-n", label}
	if fatBits != "" {
		args = append(args, "-F", fatBits)
	}
	run(t, "mkfs.vfat", append(args, img, itoa(sizeKiB))...)
	src := writeSeedFiles(t, files)
	for name := range files {
		run(t, "mcopy", "-i", img, filepath.Join(src, name), "::"+name)
	}
	return img
}

func itoa(i int) string { return strconv.Itoa(i) }

func checkSeed(t *testing.T, s Seed, files map[string]string) {
	t.Helper()
	for name, want := range files {
		var got []byte
		switch name {
		case "user-data":
			got = s.UserData
		case "meta-data":
			got = s.MetaData
		case "network-config":
			got = s.NetworkConfig
		}
		if string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestReadSeedImageFromEveryFATVariantMkfsMakes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sizeKiB int
		bits    string
	}{
		{"FAT12 1MiB", 1024, "12"},
		{"FAT16 16MiB", 16 * 1024, "16"},
		{"FAT32 64MiB", 64 * 1024, "32"},
		{"mkfs default for a small card partition", 4 * 1024, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := makeFAT(t, "CIDATA", tc.sizeKiB, tc.bits, allSeedFiles)
			s, err := ReadSeedImage(img)
			if err != nil {
				t.Fatal(err)
			}
			checkSeed(t, s, allSeedFiles)
		})
	}
}

func TestReadSeedImageRejectsOtherLabels(t *testing.T) {
	img := makeFAT(t, "BOOT", 1024, "12", allSeedFiles)
	if _, err := ReadSeedImage(img); !errors.Is(err, ErrNotCIDATA) {
		t.Fatalf("err = %v, want ErrNotCIDATA", err)
	}
}

func TestReadSeedImageWithoutNetworkConfig(t *testing.T) {
	files := map[string]string{"user-data": testUserData, "meta-data": testMetaData}
	s, err := ReadSeedImage(makeFAT(t, "CIDATA", 1024, "12", files))
	if err != nil {
		t.Fatal(err)
	}
	checkSeed(t, s, files)
	if s.NetworkConfig != nil {
		t.Errorf("network-config = %q, want none", s.NetworkConfig)
	}
}

func TestReadSeedImageFromISO(t *testing.T) {
	needTool(t, "genisoimage")
	src := writeSeedFiles(t, allSeedFiles)
	iso := filepath.Join(t.TempDir(), "seed.iso")
	// The command cloud-init's NoCloud documentation gives.
	run(t, "genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock",
		filepath.Join(src, "user-data"), filepath.Join(src, "meta-data"), filepath.Join(src, "network-config"))
	s, err := ReadSeedImage(iso)
	if err != nil {
		t.Fatal(err)
	}
	checkSeed(t, s, allSeedFiles)
}

func TestReadSeedDir(t *testing.T) {
	s, err := ReadSeedDir(writeSeedFiles(t, allSeedFiles))
	if err != nil {
		t.Fatal(err)
	}
	checkSeed(t, s, allSeedFiles)
	if _, err := ReadSeedDir(t.TempDir()); !errors.Is(err, ErrNoSeed) {
		t.Fatalf("empty dir: err = %v, want ErrNoSeed", err)
	}
}
