package lapsetest

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lapse-access/lapse"
)

func testLeases(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	acquire := func(name, owner string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.AcquireLease(ctx, name, owner, ttl)
		if err != nil {
			t.Fatalf("AcquireLease(%s, %s): %v", name, owner, err)
		}
		return ok
	}
	if !acquire("sink/siem", "a", time.Hour) {
		t.Fatal("a could not take a free lease")
	}
	if acquire("sink/siem", "b", time.Hour) {
		t.Fatal("b took a lease a holds")
	}
	if !acquire("sink/siem", "a", time.Hour) {
		t.Fatal("a could not renew its lease")
	}
	if !acquire("reconcile", "b", time.Hour) {
		t.Fatal("b could not take another, free lease")
	}
	// Releasing a lease one does not hold changes nothing.
	if err := s.ReleaseLease(ctx, "sink/siem", "b"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	if acquire("sink/siem", "b", time.Hour) {
		t.Fatal("b took a lease a holds after releasing it itself")
	}
	if err := s.ReleaseLease(ctx, "sink/siem", "a"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	if !acquire("sink/siem", "b", time.Hour) {
		t.Fatal("b could not take a released lease")
	}

	// An expired lease goes to whoever asks first.
	if !acquire("sampler", "a", time.Millisecond) {
		t.Fatal("a could not take a free lease")
	}
	time.Sleep(20 * time.Millisecond)
	if !acquire("sampler", "b", time.Hour) {
		t.Fatal("b could not take an expired lease")
	}
	if acquire("sampler", "a", time.Hour) {
		t.Fatal("a renewed a lease that expired and went to b")
	}

	for _, bad := range []struct {
		name, owner string
		ttl         time.Duration
	}{{"", "a", time.Second}, {"x", "", time.Second}, {"x", "a", 0}} {
		if _, err := s.AcquireLease(ctx, bad.name, bad.owner, bad.ttl); !errors.Is(err, lapse.ErrInvalid) {
			t.Errorf("AcquireLease(%q, %q, %s): got %v, want an error matching ErrInvalid", bad.name, bad.owner, bad.ttl, err)
		}
	}

	// Of many owners racing for a free lease, exactly one gets it.
	var mu sync.Mutex
	var winners []string
	var wg sync.WaitGroup
	for _, o := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
		wg.Go(func() {
			ok, err := s.AcquireLease(ctx, "race", o, time.Hour)
			if err != nil {
				t.Errorf("AcquireLease(%s): %v", o, err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Errorf("racing for a free lease: %v won, want exactly one", winners)
	}
}

func testRevokedSerials(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	revoke := func(auth string, serial uint64, vb time.Time) bool {
		t.Helper()
		changed, err := s.RevokeSerial(ctx, auth, serial, vb, t0)
		if err != nil {
			t.Fatalf("RevokeSerial(%s, %d): %v", auth, serial, err)
		}
		return changed
	}
	version := func(auth string) int64 {
		t.Helper()
		v, err := s.RevocationListVersion(ctx, auth)
		if err != nil {
			t.Fatalf("RevocationListVersion: %v", err)
		}
		return v
	}
	if v := version("ssh"); v != 0 {
		t.Fatalf("version of an empty list: %d, want 0", v)
	}
	if _, err := s.RevokedSerial(ctx, "ssh", 7); !errors.Is(err, lapse.ErrNotFound) {
		t.Fatalf("RevokedSerial of an empty list: %v, want ErrNotFound", err)
	}
	if !revoke("ssh", 7, t0.Add(time.Hour)) || version("ssh") != 1 {
		t.Fatalf("first revocation: version %d, want 1", version("ssh"))
	}
	if revoke("ssh", 7, t0.Add(time.Hour)) || revoke("ssh", 7, t0.Add(time.Minute)) || version("ssh") != 1 {
		t.Fatalf("revoking again with the same or an earlier expiry changed the list (version %d)", version("ssh"))
	}
	if !revoke("ssh", 7, t0.Add(2*time.Hour)) || version("ssh") != 2 {
		t.Fatalf("a later expiry: version %d, want 2", version("ssh"))
	}
	revoke("ssh", math.MaxInt64, time.Time{}) // never expires
	revoke("ssh", 3, t0.Add(-time.Hour))
	revoke("other", 7, t0.Add(time.Hour))
	got, err := s.RevokedSerial(ctx, "ssh", 7)
	if err != nil {
		t.Fatalf("RevokedSerial: %v", err)
	}
	if want := (lapse.RevokedSerial{Serial: 7, ValidBefore: t0.Add(2 * time.Hour), RevokedAt: t0}); !cmp.Equal(got, want, cmpOpts...) {
		t.Errorf("RevokedSerial: %s", cmp.Diff(want, got, cmpOpts...))
	}
	list, err := s.RevokedSerials(ctx, "ssh", time.Time{})
	if err != nil {
		t.Fatalf("RevokedSerials: %v", err)
	}
	want := lapse.RevocationList{Version: 4, Serials: []lapse.RevokedSerial{
		{Serial: 3, ValidBefore: t0.Add(-time.Hour), RevokedAt: t0},
		{Serial: 7, ValidBefore: t0.Add(2 * time.Hour), RevokedAt: t0},
		{Serial: math.MaxInt64, RevokedAt: t0},
	}}
	if !cmp.Equal(list, want, cmpOpts...) {
		t.Errorf("RevokedSerials: %s", cmp.Diff(want, list, cmpOpts...))
	}
	if list, err = s.RevokedSerials(ctx, "ssh", t0); err != nil || len(list.Serials) != 2 {
		t.Errorf("RevokedSerials since t0: %v, %v; want serials 7 and MaxInt64", list, err)
	}
	if _, err := s.RevokeSerial(ctx, "ssh", math.MaxInt64+1, t0, t0); !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("RevokeSerial above MaxInt64: %v, want ErrInvalid", err)
	}
	if _, err := s.RevokeSerial(ctx, "", 1, t0, t0); !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("RevokeSerial without authority: %v, want ErrInvalid", err)
	}
	if n, err := s.PruneRevokedSerials(ctx, "ssh", t0); err != nil || n != 1 {
		t.Fatalf("PruneRevokedSerials: %d, %v; want 1 (serial 3)", n, err)
	}
	if v := version("ssh"); v != 5 {
		t.Errorf("version after pruning: %d, want 5", v)
	}
	if n, err := s.PruneRevokedSerials(ctx, "ssh", t0); err != nil || n != 0 || version("ssh") != 5 {
		t.Errorf("pruning nothing: %d, %v, version %d; want 0 and version 5", n, err, version("ssh"))
	}
	if v := version("other"); v != 1 {
		t.Errorf("the other authority's version: %d, want 1", v)
	}

	// Concurrent revocations each count once.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := s.RevokeSerial(ctx, "busy", uint64(100+i), t0.Add(time.Hour), t0); err != nil {
				t.Errorf("RevokeSerial: %v", err)
			}
		})
	}
	wg.Wait()
	if list, err := s.RevokedSerials(ctx, "busy", time.Time{}); err != nil || list.Version != 8 || len(list.Serials) != 8 {
		t.Errorf("after 8 concurrent revocations: version %d, %d serials, %v; want 8 and 8", list.Version, len(list.Serials), err)
	}
}
