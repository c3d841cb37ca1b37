package cloudinit

import (
	"fmt"
	"net/url"
	"strings"
)

// SeedURL finds the NoCloud seed URL on a kernel command line:
// ds=nocloud;s=URL/ (also ds=nocloud-net and the older seedfrom=URL
// spelling). Boot loaders need the ';' escaped or the argument quoted; the
// kernel passes either form here unescaped or in double quotes. It returns ""
// and no error when the command line names no NoCloud seed.
func SeedURL(cmdline string) (string, error) {
	for _, arg := range splitCmdline(cmdline) {
		val, ok := strings.CutPrefix(arg, "ds=")
		if !ok {
			continue
		}
		parts := strings.Split(strings.ReplaceAll(val, `\;`, ";"), ";")
		if parts[0] != "nocloud" && parts[0] != "nocloud-net" {
			continue
		}
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(p, "=")
			if k != "s" && k != "seedfrom" {
				continue // h=, i= and other NoCloud keys are for meta-data we read from the seed
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
				return "", fmt.Errorf("kernel command line %q: seed URL %q: want http, https or file", arg, v)
			}
			if !strings.HasSuffix(u.Path, "/") {
				// cloud-init appends the file names to the URL as given.
				u.Path += "/"
			}
			return u.String(), nil
		}
	}
	return "", nil
}

// splitCmdline splits a kernel command line the way the kernel does: on
// spaces, except inside double quotes, which are removed.
func splitCmdline(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, inArg := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, inArg = !inQuote, true
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
