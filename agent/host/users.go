package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// Accounts live in two places: the image's /etc/passwd, /etc/group and
// /etc/shadow (system accounts, read-only, changing only with a release),
// and the device's accounts in libnss-extrausers' files on /var, which
// glibc reads after /etc's (nsswitch.conf: "files extrausers"). The agent
// owns the extrausers files whole: they hold exactly the configured users.
const (
	extraDir  = "/var/lib/extrausers"
	homeDir   = "/var/home"
	keysDir   = stateEtc + "/ssh/authorized_keys"
	firstUID  = 1000
	defaultSh = "/bin/sh"
)

// account is one line of a passwd file.
type account struct {
	name     string
	uid, gid int
	home     string
	shell    string
}

// group is one line of a group file.
type group struct {
	name    string
	gid     int
	members []string
}

// readDB reads a colon-separated account file; a missing file is empty.
func readDB(path string) ([][]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rows [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			rows = append(rows, strings.Split(l, ":"))
		}
	}
	return rows, sc.Err()
}

// idTable knows the names and ids taken in the image and on the device.
type idTable struct {
	imageUsers  map[string]account
	imageGroups map[string]group
	extraUsers  map[string]account // last written, to keep uids stable
	extraGroups map[string]group
	usedUIDs    map[int]bool
	usedGIDs    map[int]bool
}

func (h *Host) readIDs() (*idTable, error) {
	t := &idTable{imageUsers: map[string]account{}, imageGroups: map[string]group{},
		extraUsers: map[string]account{}, extraGroups: map[string]group{},
		usedUIDs: map[int]bool{}, usedGIDs: map[int]bool{}}
	for _, src := range []struct {
		dir    string
		users  map[string]account
		groups map[string]group
	}{{"/etc", t.imageUsers, t.imageGroups}, {extraDir, t.extraUsers, t.extraGroups}} {
		rows, err := readDB(h.path(src.dir + "/passwd"))
		if err != nil {
			return nil, fmt.Errorf("users: %w", err)
		}
		for _, r := range rows {
			if len(r) < 7 {
				continue
			}
			uid, _ := strconv.Atoi(r[2])
			gid, _ := strconv.Atoi(r[3])
			src.users[r[0]] = account{name: r[0], uid: uid, gid: gid, home: r[5], shell: r[6]}
			t.usedUIDs[uid] = true
		}
		if rows, err = readDB(h.path(src.dir + "/group")); err != nil {
			return nil, fmt.Errorf("users: %w", err)
		}
		for _, r := range rows {
			if len(r) < 4 {
				continue
			}
			gid, _ := strconv.Atoi(r[2])
			src.groups[r[0]] = group{name: r[0], gid: gid}
			t.usedGIDs[gid] = true
		}
	}
	return t, nil
}

// free returns the lowest id from firstUID not in used, and takes it.
func free(used map[int]bool, prefer int) int {
	if prefer >= firstUID && !used[prefer] {
		used[prefer] = true
		return prefer
	}
	for id := firstUID; ; id++ {
		if !used[id] {
			used[id] = true
			return id
		}
	}
}

// plan computes the extrausers accounts and groups for the configured users:
// a user keeps the uid it had; a new one takes the lowest free uid from
// 1000 and a private group of the same name; a supplementary group the
// image has gets a line with the same gid listing the members (glibc
// merges memberships across sources), one nobody has is created.
func (t *idTable) plan(users []cloudinit.User) ([]account, []group) {
	// ids of the previous write are free again unless reused by name.
	for _, a := range t.extraUsers {
		delete(t.usedUIDs, a.uid)
	}
	for _, g := range t.extraGroups {
		delete(t.usedGIDs, g.gid)
	}
	var accts []account
	var groups []group
	index := map[string]int{}
	addGroup := func(name string, gid int) int {
		if i, ok := index[name]; ok {
			return i
		}
		index[name] = len(groups)
		groups = append(groups, group{name: name, gid: gid})
		return len(groups) - 1
	}
	for _, u := range users {
		if _, ok := t.imageUsers[u.Name]; ok {
			continue
		}
		prev := t.extraUsers[u.Name]
		uid := free(t.usedUIDs, prev.uid)
		gid := free(t.usedGIDs, uid)
		addGroup(u.Name, gid)
		shell := u.Shell
		if shell == "" {
			shell = defaultSh
		}
		accts = append(accts, account{name: u.Name, uid: uid, gid: gid, home: homeDir + "/" + u.Name, shell: shell})
	}
	for _, u := range users {
		for _, gname := range u.Groups {
			var i int
			if g, ok := t.imageGroups[gname]; ok {
				i = addGroup(gname, g.gid)
			} else {
				i = addGroup(gname, free(t.usedGIDs, t.extraGroups[gname].gid))
			}
			if !slices.Contains(groups[i].members, u.Name) {
				groups[i].members = append(groups[i].members, u.Name)
			}
		}
	}
	return accts, groups
}

// shadowField is the password field: the hash, prefixed with '!' when
// password login is locked (the default, as in cloud-init); "!" alone
// when there is no hash.
func shadowField(u cloudinit.User) string {
	locked := u.LockPasswd == nil || *u.LockPasswd
	switch {
	case u.HashedPasswd == "":
		return "!"
	case locked:
		return "!" + u.HashedPasswd
	}
	return u.HashedPasswd
}

// applyUsers writes the extrausers files, the home directories and every
// user's authorized_keys. Top-level ssh_authorized_keys are root's.
func (h *Host) applyUsers(ud *cloudinit.UserData, acts *[]Action) error {
	t, err := h.readIDs()
	if err != nil {
		return err
	}
	accts, groups := t.plan(ud.Users)
	var passwd, shadow, grp bytes.Buffer
	byName := map[string]cloudinit.User{}
	for _, u := range ud.Users {
		byName[u.Name] = u
	}
	for _, a := range accts {
		fmt.Fprintf(&passwd, "%s:x:%d:%d::%s:%s\n", a.name, a.uid, a.gid, a.home, a.shell)
		// No last-change day: aging off, and the file does not change
		// from one boot to the next.
		fmt.Fprintf(&shadow, "%s:%s:::::::\n", a.name, shadowField(byName[a.name]))
	}
	for _, g := range groups {
		fmt.Fprintf(&grp, "%s:x:%d:%s\n", g.name, g.gid, strings.Join(g.members, ","))
	}
	var errs []error
	for _, f := range []struct {
		name string
		data []byte
		mode fs.FileMode
	}{{"passwd", passwd.Bytes(), 0o644}, {"group", grp.Bytes(), 0o644}, {"shadow", shadow.Bytes(), 0o640}} {
		gid := 0
		if f.name == "shadow" {
			gid = t.imageGroups["shadow"].gid // pam_unix's helper reads it as group shadow
		}
		if err := h.writeFile(extraDir+"/"+f.name, f.data, f.mode, 0, gid, acts); err != nil {
			errs = append(errs, fmt.Errorf("users: %w", err))
		}
	}
	for _, a := range accts {
		if err := h.mkdir(a.home, 0o750, a.uid, a.gid, acts); err != nil {
			errs = append(errs, fmt.Errorf("users: %s: home: %w", a.name, err))
		}
	}
	errs = append(errs, h.applyKeys(ud, t, acts))
	return errors.Join(errs...)
}

// applyKeys writes one authorized_keys file per account under
// /var/lib/cairn/etc/ssh/authorized_keys, which sshd reads besides
// ~/.ssh/authorized_keys (AuthorizedKeysFile in the image's sshd config):
// root-owned, so a key the configuration did not give cannot be added by
// the user, and outside the read-only /root. Files of users no longer
// configured are removed.
func (h *Host) applyKeys(ud *cloudinit.UserData, t *idTable, acts *[]Action) error {
	keys := map[string][]string{}
	var order []string
	add := func(name string, ks []string) {
		if _, ok := keys[name]; !ok {
			order = append(order, name)
		}
		keys[name] = append(keys[name], ks...)
	}
	if len(ud.SSHAuthorizedKeys) > 0 {
		add("root", ud.SSHAuthorizedKeys)
	}
	var errs []error
	for _, u := range ud.Users {
		if _, ok := t.imageUsers[u.Name]; ok && (u.HashedPasswd != "" || u.Shell != "" || len(u.Groups) > 0) {
			errs = append(errs, fmt.Errorf("users: %s: %w: only ssh_authorized_keys apply to it", u.Name, ErrImageAccount))
		}
		if len(u.SSHAuthorizedKeys) > 0 {
			add(u.Name, u.SSHAuthorizedKeys)
		}
	}
	if err := h.mkdir(keysDir, 0o755, 0, 0, acts); err != nil {
		return errors.Join(append(errs, fmt.Errorf("ssh keys: %w", err))...)
	}
	for _, name := range order {
		data := strings.Join(keys[name], "\n") + "\n"
		if err := h.writeFile(keysDir+"/"+name, []byte(data), 0o644, 0, 0, acts); err != nil {
			errs = append(errs, fmt.Errorf("ssh keys: %w", err))
		}
	}
	entries, err := os.ReadDir(h.path(keysDir))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("ssh keys: %w", err))...)
	}
	for _, e := range entries {
		if _, ok := keys[e.Name()]; ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Remove(h.path(keysDir + "/" + e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("ssh keys: %w", err))
			continue
		}
		*acts = append(*acts, Action{OpRemove, keysDir + "/" + e.Name()})
	}
	return errors.Join(errs...)
}
