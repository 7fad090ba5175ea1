package lapse_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
)

func chain(n int) []lapse.AuditEvent {
	var evs []lapse.AuditEvent
	prev := ""
	for i := 1; i <= n; i++ {
		r := lapse.Request{ID: "r", User: "alice", State: lapse.StatePending}
		ev := lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, map[string]int{"i": i}, t0)
		ev.Seq, ev.PrevHash = int64(i), prev
		ev.Hash = ev.ComputeHash(prev)
		prev = ev.Hash
		evs = append(evs, ev)
	}
	return evs
}

func verify(evs []lapse.AuditEvent) error {
	var v lapse.ChainVerifier
	for _, e := range evs {
		if err := v.Add(e); err != nil {
			return err
		}
	}
	return nil
}

func TestChainDetectsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func([]lapse.AuditEvent) []lapse.AuditEvent
		wantSeq int64
	}{
		{"untouched", func(e []lapse.AuditEvent) []lapse.AuditEvent { return e }, 0},
		{"edited", func(e []lapse.AuditEvent) []lapse.AuditEvent { e[2].Actor = "mallory"; return e }, 3},
		{"deleted", func(e []lapse.AuditEvent) []lapse.AuditEvent { return append(e[:3], e[4:]...) }, 4},
		{"reordered", func(e []lapse.AuditEvent) []lapse.AuditEvent { e[1], e[2] = e[2], e[1]; return e }, 2},
		{"deleted and renumbered", func(e []lapse.AuditEvent) []lapse.AuditEvent {
			e = append(e[:3], e[4:]...)
			for i := range e {
				e[i].Seq = int64(i + 1)
			}
			return e
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(tt.tamper(chain(6)))
			if tt.wantSeq == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *lapse.ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq {
				t.Fatalf("got %v, want break at %d", err, tt.wantSeq)
			}
		})
	}
}

// TestComputeHashIsStable pins the chain hash: stored logs were hashed
// with it, so it must never change.
func TestComputeHashIsStable(t *testing.T) {
	ev := lapse.AuditEvent{Seq: 42, Time: time.Date(2031, 3, 14, 15, 9, 26, 535897932, time.FixedZone("x", 3600)), Type: "request.created",
		Actor: "alice", RequestID: "r1", User: "alice", Resource: "db", Role: "read", From: "pending", To: "active", Data: []byte(`{"a":"<b>"}`)}
	if got, want := ev.ComputeHash("e40af811f882a4747f9f8995074259e425d92beefe405bddb58c90599b8abc3c"),
		"4da4766cfee2872e4c9e77193548ccf8db94d3beebd8660be690335483f67486"; got != want {
		t.Errorf("hash %s, want %s", got, want)
	}
	if got, want := (lapse.AuditEvent{Seq: 1, Type: "x"}).ComputeHash(""), "56861f318aaee3e36714bfdda976688f1374e4d72ae996325c50b1f3a191c04d"; got != want {
		t.Errorf("hash %s, want %s", got, want)
	}
}
