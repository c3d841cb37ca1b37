package channel

import (
	"context"
	"io"
	"regexp"
)

var boardLike = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

type progressReader struct {
	ctx      context.Context
	r        io.Reader
	name     string
	done     int64
	total    int64
	progress func(string, int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.progress != nil && n > 0 {
		p.progress(p.name, p.done, p.total)
	}
	return n, err
}
