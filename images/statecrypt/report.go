package statecrypt

import (
	"encoding/json"
	"fmt"
	"os"
)

// ReportPath is where cairn-init says what it did with the state
// partition on this boot, for the agent (docs/tpm.md, "Encrypted state
// partition").
const ReportPath = "/run/cairn/state.json"

// What Report.Var says /var is.
const (
	VarPartition = "partition" // the state partition, plain or through dm-crypt
	VarTmpfs     = "tmpfs"     // RAM: the partition could not be opened
)

// Report is the JSON file at ReportPath.
type Report struct {
	Device    string `json:"device"`
	Encrypted bool   `json:"encrypted"`
	// Mapped is the dm-crypt device the file system is on.
	Mapped string `json:"mapped,omitempty"`
	// Created: this boot wrote the header (first boot).
	Created bool `json:"created,omitempty"`
	// Var is VarPartition or VarTmpfs.
	Var string `json:"var"`
	// Note says why a partition meant to be encrypted is plaintext.
	Note string `json:"note,omitempty"`
	// Error says why the partition was not opened; /var is a tmpfs.
	Error string `json:"error,omitempty"`
}

// ReadReport reads the report at path.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}
