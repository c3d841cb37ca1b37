package verity

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkTreeVsVeritysetup builds the tree of a 256 MiB image with Build
// and with veritysetup format, and reports how many times faster Build is.
func BenchmarkTreeVsVeritysetup(b *testing.B) {
	vs := needTool(b, "veritysetup")
	const size = 256 << 20
	path := randomFile(b, size, 1)
	salt := []byte("benchmark salt")
	hashFile := filepath.Join(b.TempDir(), "hash")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out, err := os.Create(hashFile)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	b.SetBytes(size)
	var ours, theirs time.Duration
	for b.Loop() {
		start := time.Now()
		if _, _, err := Build(context.Background(), out, f, size, Params{Salt: salt}); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		start = time.Now()
		cmd := exec.Command(vs, "format", "--no-superblock", "--salt="+saltArg(salt),
			"--data-blocks="+strconv.Itoa(size/BlockSize), path, hashFile)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("veritysetup format: %v\n%s", err, o)
		}
		theirs += time.Since(start)
	}
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N)/1e6, "ms-ours/op")
	b.ReportMetric(float64(theirs.Nanoseconds())/float64(b.N)/1e6, "ms-veritysetup/op")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "speedup")
}

// BenchmarkBuildMostlyZero builds the tree of a 256 MiB image in which 3 of
// every 5 blocks are zero, interleaved with random ones: about the share of
// free space in a release image's file system.
func BenchmarkBuildMostlyZero(b *testing.B) {
	const size = 256 << 20
	data := zeroEvery(randomBytes(size, 2), func(i int) bool { return i%5 < 3 })
	salt := []byte("benchmark salt")
	r := bytes.NewReader(data)
	b.SetBytes(size)
	for b.Loop() {
		if _, err := RootHash(context.Background(), r, size, Params{Salt: salt}); err != nil {
			b.Fatal(err)
		}
	}
}
