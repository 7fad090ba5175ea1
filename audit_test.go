package lapse_test

import (
	"errors"
	"testing"

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
