package initrd

import (
	"encoding/hex"
	"fmt"

	"github.com/cairn-edge/cairn/images/statecrypt"
)

// CryptTable is the dm-crypt table line that maps the encrypted payload of
// dev, from offset bytes on, with key: the cipher of a version 1 header,
// IV offset 0 (sector 0 of the mapping is the payload's first sector), and
// no allow_discards, so TRIM does not show which blocks are in use.
func CryptTable(dev string, key []byte, offset int64) (string, error) {
	if len(key) != statecrypt.KeySize {
		return "", fmt.Errorf("dm-crypt %s: key of %d bytes, want %d", dev, len(key), statecrypt.KeySize)
	}
	if offset <= 0 || offset%512 != 0 {
		return "", fmt.Errorf("dm-crypt %s: payload offset %d is not a positive number of sectors", dev, offset)
	}
	return fmt.Sprintf("%s %s 0 %s %d", statecrypt.Cipher, hex.EncodeToString(key), dev, offset/512), nil
}

// SetupCrypt creates the read-write dm-crypt device name over dev's
// payload, from offset bytes to the end of dev as it is now, and returns
// the path of its block device node, made under devDir. Map after growing
// the partition: the mapping keeps the size it was created with.
func SetupCrypt(devDir, name, dev string, key []byte, offset int64) (string, error) {
	table, err := CryptTable(dev, key, offset)
	if err != nil {
		return "", err
	}
	size, err := deviceBytes(dev)
	if err != nil {
		return "", fmt.Errorf("dm-crypt %s: %w", dev, err)
	}
	if size <= offset {
		return "", fmt.Errorf("dm-crypt %s: %d bytes, nothing after the payload offset %d", dev, size, offset)
	}
	node, err := dmCreate(devDir, name, 0, uint64((size-offset)/512), "crypt", table)
	if err != nil {
		return "", fmt.Errorf("dm-crypt %s: %w (are dm_crypt, xts and ecb loaded?)", dev, err)
	}
	return node, nil
}

// RemoveCrypt removes the dm-crypt device name made by SetupCrypt; its file
// system must be unmounted.
func RemoveCrypt(devDir, name string) error {
	if err := dmRemove(devDir, name); err != nil {
		return fmt.Errorf("dm-crypt: %w", err)
	}
	return nil
}
