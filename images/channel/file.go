package channel

import (
	"regexp"
)

var boardLike = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
