package footer

import (
	"fmt"
	"io"
	"os"
)

// ReadAt reads the footer in the last Size bytes of a slot of slotSize
// bytes, and checks that the footer was made for a slot of that size.
func ReadAt(r io.ReaderAt, slotSize int64) (*Footer, error) {
	if slotSize < Size {
		return nil, fmt.Errorf("%w: slot of %d bytes is smaller than a footer", ErrNoFooter, slotSize)
	}
	b := make([]byte, Size)
	n, err := r.ReadAt(b, slotSize-Size)
	if n < Size {
		return nil, fmt.Errorf("read footer at offset %d: %w", slotSize-Size, err)
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("footer at offset %d: %w", slotSize-Size, err)
	}
	if f.SlotSize != slotSize {
		return nil, fmt.Errorf("footer at offset %d: %w: made for a slot of %d bytes, this one has %d", slotSize-Size, ErrInvalid, f.SlotSize, slotSize)
	}
	return f, nil
}

// ReadFromDevice reads the footer at the end of a block device or a slot
// image file.
func ReadFromDevice(path string) (*Footer, error) {
	dev, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("slot footer: %w", err)
	}
	defer dev.Close()
	// Seeking to the end gives the size of block devices and files alike.
	size, err := dev.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("slot footer %s: size: %w", path, err)
	}
	f, err := ReadAt(dev, size)
	if err != nil {
		return nil, fmt.Errorf("slot footer %s: %w", path, err)
	}
	return f, nil
}
