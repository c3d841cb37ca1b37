package update

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// What an attack on the channel looks like from the device, one sentinel
// per attack, so callers and logs can tell them apart. Every refusal wraps
// one of these together with go-tuf's own error.
var (
	ErrUntrustedSignature = errors.New("arbitrary software attack: metadata carries no valid signature from a trusted key")
	ErrSignatureThreshold = errors.New("signature threshold not met: too few trusted keys signed the metadata")
	ErrRollback           = errors.New("rollback attack: metadata older than what this device already trusts")
	ErrFreeze             = errors.New("freeze attack: metadata has expired (or the device clock is wrong)")
	ErrMixAndMatch        = errors.New("mix-and-match attack: metadata does not match what its parent role signed")
	ErrEndlessData        = errors.New("endless data attack: more bytes than the signed length")
	ErrTargetTruncated    = errors.New("truncated target: fewer bytes than the signed length")
	ErrTargetCorrupted    = errors.New("corrupted target: content does not match the signed hash")
	ErrWrongBoard         = errors.New("wrong board: the release is signed for another board")
)

// Outcomes of a check that are not attacks.
var (
	ErrNoRelease    = errors.New("no release for this board on the channel")
	ErrUpToDate     = errors.New("already at the newest release of the channel")
	ErrNotInRollout = errors.New("this device is outside the staged rollout of every newer release")
)

// RefreshError is a refused metadata refresh: which file, which attack,
// and go-tuf's reason.
type RefreshError struct {
	File   string // the last metadata file fetched, e.g. "3.snapshot.json"
	Attack error  // one of the sentinels above, nil when not an attack
	Err    error
}

func (e *RefreshError) Error() string {
	if e.Attack == nil {
		return fmt.Sprintf("channel refresh (last fetched %s): %v", e.File, e.Err)
	}
	return fmt.Sprintf("channel refresh (last fetched %s): %v: %v", e.File, e.Attack, e.Err)
}

func (e *RefreshError) Unwrap() []error {
	if e.Attack == nil {
		return []error{e.Err}
	}
	return []error{e.Attack, e.Err}
}

var signatureCount = regexp.MustCompile(`got (\d+), want (\d+)`)

// classify names the attack behind a go-tuf refresh error, from its type
// and the last metadata file fetched.
func classify(err error, last *fetched) error {
	re := &RefreshError{Err: err}
	if last != nil {
		re.File = last.file
	}
	var (
		unsigned *metadata.ErrUnsignedMetadata
		expired  *metadata.ErrExpiredMetadata
		mismatch *metadata.ErrLengthOrHashMismatch
		badVer   *metadata.ErrBadVersionNumber
		tooLong  *metadata.ErrDownloadLengthMismatch
	)
	switch {
	case errors.As(err, &tooLong):
		re.Attack = ErrEndlessData
	case errors.As(err, &unsigned):
		re.Attack = ErrUntrustedSignature
		if m := signatureCount.FindStringSubmatch(unsigned.Msg); m != nil {
			if got, _ := strconv.Atoi(m[1]); got > 0 {
				re.Attack = ErrSignatureThreshold
			}
		}
	case errors.As(err, &expired):
		re.Attack = ErrFreeze
	case errors.As(err, &mismatch):
		re.Attack = ErrMixAndMatch
	case errors.As(err, &badVer):
		re.Attack = ErrRollback
		// A snapshot or targets file whose own version is not the one its
		// parent named was swapped in; one that is, but lists older
		// versions of its children, rolls them back.
		if last != nil && last.wantVersion > 0 && last.gotVersion != last.wantVersion &&
			(last.role == metadata.SNAPSHOT || last.role == metadata.TARGETS) {
			re.Attack = ErrMixAndMatch
		}
	}
	return re
}
