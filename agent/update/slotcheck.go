package update

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/verity"
)

// SlotVerifier checks a freshly written slot the way cairn-init will check
// it at boot, before the boot state may point at it: the footer is signed by
// the release key, it names the release the channel offered, its root hash
// is the manifest's, and the dm-verity tree on the slot matches it.
type SlotVerifier struct {
	ReleaseKey *ecdsa.PublicKey
}

// Verify has the shape of Installer.VerifyVerity.
func (v SlotVerifier) Verify(ctx context.Context, device string, m *release.Manifest) error {
	dev, err := os.Open(device)
	if err != nil {
		return fmt.Errorf("verify slot %s: %w", device, err)
	}
	defer dev.Close()
	// The image is the whole slot as built; the partition may be larger,
	// so the footer is at the end of the image, not of the device.
	ft, err := footer.ReadAt(dev, m.Image.Size)
	if err != nil {
		return fmt.Errorf("verify slot %s: %w: %w", device, ErrVerityMismatch, err)
	}
	if err := ft.Verify(v.ReleaseKey); err != nil {
		return fmt.Errorf("verify slot %s: %w: %w", device, ErrVerityMismatch, err)
	}
	if ft.Manifest.Version != m.Version || ft.Manifest.Board != m.Board {
		return fmt.Errorf("verify slot %s: %w: footer names %s for %s, the channel offered %s for %s",
			device, ErrVerityMismatch, ft.Manifest.Version, ft.Manifest.Board, m.Version, m.Board)
	}
	if got := hex.EncodeToString(ft.RootHash); got != m.VerityRootHash {
		return fmt.Errorf("verify slot %s: %w: footer root hash %s, manifest %s", device, ErrVerityMismatch, got, m.VerityRootHash)
	}
	if err := verity.Verify(ctx, dev, ft.DataSize, ft.VerityParams(), ft.RootHash); err != nil {
		return fmt.Errorf("verify slot %s: %w: %w", device, ErrVerityMismatch, err)
	}
	return nil
}
