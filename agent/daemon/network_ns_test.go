package daemon

import (
	"testing"

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
