// Package systemd holds the systemd units the image installs for Cairn, so
// that the image builder and the tests read the same bytes.
package systemd

import _ "embed"

// AgentUnitName is the unit that runs `cairn-agent run`.
const AgentUnitName = "cairn-agent.service"

// AgentUnit is the cairn-agent.service unit file.
//
//go:embed cairn-agent.service
var AgentUnit []byte
