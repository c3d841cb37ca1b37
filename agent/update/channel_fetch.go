package update

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// PollStats is what one check fetched, for logs and for sizing idle polls.
type PollStats struct {
	Requests int      `json:"requests"`
	Bytes    int64    `json:"bytes"`
	Files    []string `json:"files"` // files downloaded with status 200
}

// fetched describes the last metadata file downloaded.
type fetched struct {
	file        string
	role        string
	wantVersion int64 // from a consistent-snapshot name, 0 for timestamp.json
	gotVersion  int64
}

// fetcher is go-tuf's Fetcher bound to one check's context; it bounds every
// body by the length go-tuf allows and records what it fetched.
type fetcher struct {
	ctx    context.Context
	client *http.Client
	stats  *PollStats
	last   *fetched
}

func (f *fetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	file := path.Base(url)
	f.last = parseMetadataName(file)
	data, err := f.get(url, maxLength)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(data, &probe) == nil {
		f.last.gotVersion = probe.Signed.Version
	}
	return data, nil
}

// get downloads url, refusing bodies longer than maxLength with go-tuf's
// length error.
func (f *fetcher) get(url string, maxLength int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	f.stats.Requests++
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: url}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: %d bytes announced, at most %d signed", url, resp.ContentLength, maxLength)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	f.stats.Bytes += int64(len(data))
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than %d bytes", url, maxLength)}
	}
	f.stats.Files = append(f.stats.Files, path.Base(url))
	return data, nil
}

func parseMetadataName(file string) *fetched {
	fe := &fetched{file: file}
	parts := strings.Split(strings.TrimSuffix(file, ".json"), ".")
	fe.role = parts[len(parts)-1]
	if len(parts) == 2 {
		fe.wantVersion, _ = strconv.ParseInt(parts[0], 10, 64)
	}
	return fe
}
