package filelock

import (
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Holders of the same lock file take turns, in this process as across
// processes (each Lock opens its own file description, which is what
// flock(2) excludes): none enters while another is inside.
func TestHoldersTakeTurns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache", "entry.lock")
	var (
		mu      sync.Mutex
		inside  int
		overlap bool
		wg      sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := Lock(path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			overlap = overlap || inside > 1
			mu.Unlock()
			for range 1000 { // give another holder the chance to come in
				mu.Lock()
				overlap = overlap || inside > 1
				mu.Unlock()
				runtime.Gosched()
			}
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if overlap {
		t.Fatal("two holders were inside the lock at once")
	}
}

func TestLockNamesAPathItCannotCreate(t *testing.T) {
	dir := t.TempDir()
	if _, err := Lock(filepath.Join(dir, "\x00bad", "x.lock")); err == nil {
		t.Fatal("Lock of an impossible path succeeded")
	}
}
