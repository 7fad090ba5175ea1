package pgtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// binaries are the server programs of one PostgreSQL installation.
type binaries struct {
	initdb, postgres string
	// version is the major version that postgres --version reports.
	version int
}

// libDirs are where Debian and Ubuntu install the server binaries, one
// directory per major version.
const libDirs = "/usr/lib/postgresql/*/bin"

var findBinaries = sync.OnceValues(func() (binaries, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	found, _ := filepath.Glob(libDirs)
	// Newest version first: /usr/lib/postgresql/17/bin before .../9.6/bin.
	slices.SortFunc(found, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	dirs = append(dirs, found...)
	for _, dir := range dirs {
		b := binaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
		if !executable(b.initdb) || !executable(b.postgres) {
			continue
		}
		out, err := exec.Command(b.postgres, "--version").Output()
		if err != nil {
			return binaries{}, fmt.Errorf("%s --version: %w", b.postgres, err)
		}
		b.version = majorVersion(string(out))
		return b, nil
	}
	return binaries{}, errNoBinaries
})

func executable(path string) bool {
	_, err := exec.LookPath(path)
	return err == nil
}

// compareVersions compares dotted version numbers such as "9.6" and "15".
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// majorVersion reads the major version from "postgres (PostgreSQL) 15.18
// (Debian 15.18-0+deb12u1)"; 0 if it finds none.
func majorVersion(s string) int {
	_, rest, ok := strings.Cut(s, ") ")
	if !ok {
		return 0
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	v, _ := strconv.Atoi(rest[:end])
	return v
}
