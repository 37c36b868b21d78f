package rootless

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// Userns is how a sandbox maps identities.
type Userns string

const (
	// UsernsSingle maps only the user's own uid and gid, written by devbox
	// itself: no setuid helper and no /etc/subuid entry needed. Root
	// emulation stands in for the ids that are missing.
	UsernsSingle Userns = "single"
	// UsernsSubuid maps a full range: the user's own id to itself, and the
	// ids around it to the user's subordinate ids in /etc/subuid and
	// /etc/subgid, written by the setuid helpers newuidmap and newgidmap.
	// Processes inside can switch users (databases, su) for real.
	UsernsSubuid Userns = "subuid"
)

// IDRange maps Size ids from Inside (in the sandbox) to Host.
type IDRange struct {
	Inside int `json:"inside"`
	Host   int `json:"host"`
	Size   int `json:"size"`
}

// outerRanges is the id map of a subuid sandbox's own user namespace: the
// user is root (so pid 1 has the capabilities to set the sandbox up, and
// files it writes are the user's), and ids 1..count are the user's
// subordinate ids.
func outerRanges(id, start, count int) []IDRange {
	return []IDRange{{0, id, 1}, {1, start, count}}
}

// innerRanges is the id map of the nested user namespace a subuid
// sandbox's command runs in, over the size ids of the outer one: id maps
// to the outer root (the user on the host, so files in the work tree stay
// theirs) and every other id to an outer id, so that the command can still
// switch to any of them. This is podman's keep-id, done by pid 1, which
// may write any map of its own namespace's ids.
func innerRanges(id, size int) []IDRange {
	if id >= size {
		return []IDRange{{0, 1, size - 1}, {id, 0, 1}}
	}
	r := []IDRange{}
	if id > 0 {
		r = append(r, IDRange{0, 1, id})
	}
	r = append(r, IDRange{id, 0, 1})
	if size > id+1 {
		r = append(r, IDRange{id + 1, id + 1, size - id - 1})
	}
	return r
}

// subuidMaps are the uid and gid maps of a subuid sandbox's own user
// namespace for the current user.
func subuidMaps() (uids, gids []IDRange, err error) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		// Real root may map any ids itself: the first 65536, as they are.
		full := []IDRange{{0, 0, 65536}}
		return full, full, nil
	}
	u, err := user.Current()
	if err != nil {
		return nil, nil, err
	}
	fix := fmt.Sprintf("add a range with 'sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s', or use userns = \"single\"", u.Username)
	us, un, err := SubIDRange("/etc/subuid", u.Username, u.Uid)
	if err != nil {
		return nil, nil, fmt.Errorf("userns = \"subuid\": %v: %s", err, fix)
	}
	gs, gn, err := SubIDRange("/etc/subgid", u.Username, u.Uid)
	if err != nil {
		return nil, nil, fmt.Errorf("userns = \"subuid\": %v: %s", err, fix)
	}
	for _, helper := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(helper); err != nil {
			return nil, nil, fmt.Errorf("userns = \"subuid\" needs %s: install it (Debian: apt-get install uidmap), or use userns = \"single\"", helper)
		}
	}
	return outerRanges(uid, us, un), outerRanges(gid, gs, gn), nil
}

// mapSize is the number of ids a map covers.
func mapSize(r []IDRange) int {
	n := 0
	for _, x := range r {
		n += x.Size
	}
	return n
}

// sysProcIDMaps converts ranges for os/exec, for a privileged caller.
func sysProcIDMaps(r []IDRange) []syscall.SysProcIDMap {
	m := make([]syscall.SysProcIDMap, len(r))
	for i, x := range r {
		m[i] = syscall.SysProcIDMap{ContainerID: x.Inside, HostID: x.Host, Size: x.Size}
	}
	return m
}

// writeIDMaps writes pid's uid and gid maps through newuidmap and
// newgidmap, the setuid helpers that check the ranges against /etc/subuid
// and /etc/subgid.
func writeIDMaps(pid int, uids, gids []IDRange) error {
	for _, m := range []struct {
		helper string
		ranges []IDRange
	}{{"newuidmap", uids}, {"newgidmap", gids}} {
		args := []string{strconv.Itoa(pid)}
		for _, r := range m.ranges {
			args = append(args, strconv.Itoa(r.Inside), strconv.Itoa(r.Host), strconv.Itoa(r.Size))
		}
		out, err := exec.Command(m.helper, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", m.helper, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// stageAwaitIDMap marks pid 1's first stage in a subuid sandbox.
const stageAwaitIDMap = "await-idmap"

// nextStageEnv names what the first stage executes once mapped: a
// sandbox's pid 1 by default, or a probe.
const nextStageEnv = "_DEVBOX_NEXT_STAGE"

// RemoveAllMapped removes path from inside a user namespace with the
// subuid map, as its root: a subuid sandbox leaves files owned by the
// user's subordinate ids in its writable layer, which the user cannot
// remove directly.
func RemoveAllMapped(path string) error {
	uids, gids, err := subuidMaps()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	defer w.Close()
	helperMaps := os.Getuid() != 0
	cmd := exec.Command("/proc/self/exe", path)
	cmd.Env = []string{initEnv + "=" + probeRemove}
	if helperMaps {
		cmd.Env = []string{initEnv + "=" + stageAwaitIDMap, nextStageEnv + "=" + probeRemove}
	}
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL}
	if !helperMaps {
		cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings = sysProcIDMaps(uids), sysProcIDMaps(gids)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	r.Close()
	if helperMaps {
		if err := writeIDMaps(cmd.Process.Pid, uids, gids); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
		w.Write([]byte(idmapDone))
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("remove %s in a user namespace: %v: %s", path, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// idmapDone is the line the parent writes on the spec pipe once the maps
// of a subuid sandbox are written; the spec follows.
const idmapDone = "idmap-done\n"

// awaitIDMap is pid 1 of a subuid sandbox before its maps exist: it waits
// for the parent to write them, then executes itself again. The first exec
// happened while its uid was unmapped, which cost it its capabilities; the
// second, as root of the namespace, gives them back.
func awaitIDMap() int {
	line := make([]byte, 0, len(idmapDone))
	b := make([]byte, 1)
	for len(line) < len(idmapDone) {
		// One byte at a time: the spec that follows is for the next stage.
		if _, err := os.NewFile(fdSpec, "spec").Read(b); err != nil {
			fmt.Fprintf(os.Stderr, "devbox: wait for the id maps: %v\n", err)
			return 1
		}
		line = append(line, b[0])
	}
	if string(line) != idmapDone {
		fmt.Fprintf(os.Stderr, "devbox: unexpected message %q before the spec\n", line)
		return 1
	}
	next := os.Getenv(nextStageEnv)
	if next == "" {
		next = "1"
	}
	err := syscall.Exec("/proc/self/exe", os.Args, []string{initEnv + "=" + next})
	fmt.Fprintf(os.Stderr, "devbox: re-execute pid 1: %v\n", err)
	return 1
}
