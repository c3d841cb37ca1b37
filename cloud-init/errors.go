package cloudinit

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid is wrapped by every error that means "the configuration does not
// validate", so callers can tell a bad config from an unreadable source.
var ErrInvalid = errors.New("invalid configuration")

// ValidationError is one problem in one configuration file, located at the
// line and column (both 1-based) of the YAML node it concerns.
type ValidationError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path,omitempty"` // dotted key path, e.g. cairn.k3s.role
	Message string `json:"message"`
}

func (e ValidationError) Error() string {
	msg := e.Message
	if e.Path != "" {
		msg = e.Path + ": " + msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, msg)
}

// ValidationErrors is every problem found in a configuration, in file, line
// and column order. Validation does not stop at the first one: an operator
// editing a CIDATA card on a laptop fixes them all in one go.
type ValidationErrors []ValidationError

func (es ValidationErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true for any ValidationErrors.
func (es ValidationErrors) Is(target error) bool { return target == ErrInvalid }

func (es ValidationErrors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// asError returns nil for no errors, so callers can write `return cfg, errs.asError()`.
func (es ValidationErrors) asError() error {
	if len(es) == 0 {
		return nil
	}
	es.sort()
	return es
}

// nearest returns the candidate closest to word by edit distance, or "" when
// none is close enough to be a plausible misspelling.
func nearest(word string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(strings.ReplaceAll(word, "-", "_")), c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(2, len(word)/3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counted in bytes
// (keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
