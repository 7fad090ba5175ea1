package ssh

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// stateFile is the name of the revocation list in [Config.StateDir].
const stateFile = "revoked"

// stateHeader starts the revocation list file, with its format version.
const stateHeader = "lapse ssh revocations 1"

// PruneGrace is how long after a certificate's ValidBefore its serial stays
// in the KRL: sshd checks ValidBefore by its own clock, which may lag.
const PruneGrace = time.Hour

// never is the expiry recorded for a certificate without ValidBefore; its
// serial is never pruned.
const never = math.MaxInt64

// revocations are the revoked serials with the ValidBefore of their
// certificates, in Unix seconds, and the KRL version that counts changes.
type revocations struct {
	version uint64
	until   map[uint64]int64
}

// current returns the serials still worth listing at now, sorted.
func (r *revocations) current(now time.Time) []uint64 {
	cut := now.Add(-PruneGrace).Unix()
	out := make([]uint64, 0, len(r.until))
	for s, u := range r.until {
		if u > cut {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// prune drops the serials whose certificates expired long enough before
// now, and reports whether it dropped any.
func (r *revocations) prune(now time.Time) bool {
	cut := now.Add(-PruneGrace).Unix()
	n := len(r.until)
	for s, u := range r.until {
		if u <= cut {
			delete(r.until, s)
		}
	}
	return len(r.until) != n
}

// marshal encodes the list: a header line, the KRL version, then one line
// per serial with its expiry, sorted by serial.
func (r *revocations) marshal() []byte {
	serials := make([]uint64, 0, len(r.until))
	for s := range r.until {
		serials = append(serials, s)
	}
	slices.Sort(serials)
	b := make([]byte, 0, 64+len(serials)*32)
	b = append(b, stateHeader...)
	b = append(b, "\nkrl_version "...)
	b = strconv.AppendUint(b, r.version, 10)
	b = append(b, '\n')
	for _, s := range serials {
		b = strconv.AppendUint(b, s, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, r.until[s], 10)
		b = append(b, '\n')
	}
	return b
}

// loadRevocations reads the list from path; a missing file is an empty
// list.
func loadRevocations(path string) (*revocations, error) {
	r := &revocations{until: map[uint64]int64{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ssh revocations: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	bad := func() error {
		return fmt.Errorf("read ssh revocations: %s line %d is malformed", filepath.Base(path), line)
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case line == 1:
			if text != stateHeader {
				return nil, bad()
			}
		case line == 2:
			v, ok := strings.CutPrefix(text, "krl_version ")
			if r.version, err = strconv.ParseUint(v, 10, 64); !ok || err != nil {
				return nil, bad()
			}
		default:
			s, u, ok := strings.Cut(text, " ")
			serial, err1 := strconv.ParseUint(s, 10, 64)
			until, err2 := strconv.ParseInt(u, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, bad()
			}
			r.until[serial] = until
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ssh revocations: %w", err)
	}
	if line < 2 {
		return nil, bad()
	}
	return r, nil
}

// writeFileAtomic replaces path with data: readers see the old or the new
// contents, never a mix, and the new contents survive a crash once it
// returns.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
