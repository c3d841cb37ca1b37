package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/images/rootfs"

	"github.com/vishvananda/netns"
)

// A daemon configured without a namespace, as on a device, reconciles its
// own: the zero handle must not be taken for file descriptor 0.
func TestUnsetNamespaceIsTheAgentsOwn(t *testing.T) {
	own, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	for _, unset := range []netns.NsHandle{0, netns.None()} {
		got, err := namespace(unset)
		if err != nil {
			t.Fatalf("namespace(%d): %v", unset, err)
		}
		if !got.Equal(own) {
			t.Errorf("namespace(%d) = %v, want the agent's own %v", unset, got, own)
		}
		got.Close()
	}
}

// On a read-only root the image links /etc/resolv.conf into /run; the
// reconciler writes the link's target, relative or absolute, under Root.
func TestResolvConfFollowsTheImagesLink(t *testing.T) {
	for _, link := range []string{"", "../run/cairn/resolv.conf", "/run/cairn/resolv.conf"} {
		root := t.TempDir()
		want := filepath.Join(root, "etc/resolv.conf")
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if link != "" {
			want = filepath.Join(root, "run/cairn/resolv.conf")
			if err := os.Symlink(link, filepath.Join(root, "etc/resolv.conf")); err != nil {
				t.Fatal(err)
			}
		}
		if got := resolvConfPath(root); got != want {
			t.Errorf("link %q: resolv.conf written at %s, want %s", link, got, want)
		}
	}
}

// The link the image ships is one the agent follows to a writable place.
func TestResolvConfOfTheImageIsWritable(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rootfs.ResolvConfTarget, filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	got := resolvConfPath(root)
	if !strings.HasPrefix(got, filepath.Join(root, "run")+"/") {
		t.Fatalf("the image's /etc/resolv.conf leads the agent to %s, not onto /run", got)
	}
}
