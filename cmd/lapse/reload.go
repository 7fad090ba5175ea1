package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
)

// policyWatcher reloads the policies folder on SIGHUP and when its files
// change. A policy set that does not compile is refused and the one in
// force stays; every change in force is audited with both hashes.
type policyWatcher struct {
	cfg     *config.Config
	decider *decider
	store   lapse.Store
	logger  *slog.Logger
	// Interval is how often the folder is checked for changes.
	Interval time.Duration
	// reevaluate asks the policies in force about every active grant.
	reevaluate func(ctx context.Context) (int, error)
	// ReevaluateEvery is how often every active grant is asked about again,
	// so that changes in risk (new refusals, stale posture) take effect.
	ReevaluateEvery time.Duration
}

func (w *policyWatcher) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	w.audit(ctx, "policy.loaded", "", w.decider.p.Load().Hash())
	// Users' groups or the policies may have changed while Lapse was down.
	w.check(ctx)
	last := w.fingerprint()
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	every := w.ReevaluateEvery
	if every <= 0 {
		every = 5 * time.Minute
	}
	re := time.NewTicker(every)
	defer re.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-re.C:
			w.check(ctx)
			continue
		case <-hup:
			w.logger.Info("reloading policies on SIGHUP")
		case <-t.C:
			fp := w.fingerprint()
			if fp == last {
				continue
			}
			last = fp
			w.logger.Info("policy files changed; reloading")
		}
		w.reload(ctx)
	}
}

// fingerprint summarises the names, sizes and times of the policy files.
func (w *policyWatcher) fingerprint() string {
	if w.cfg.Policies == "" {
		return ""
	}
	files, _ := filepath.Glob(filepath.Join(w.cfg.Policies, "*.cedar"))
	h := sha256.New()
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (w *policyWatcher) reload(ctx context.Context) {
	e, err := buildEngine(w.cfg)
	if err != nil {
		w.logger.Error("policies refused; the previous ones stay in force", "err", err)
		return
	}
	old := w.decider.p.Swap(e)
	if old.Hash() == e.Hash() {
		return
	}
	w.logger.Info("policies in force", "hash", e.Hash(), "count", e.Len())
	w.audit(ctx, "policy.changed", old.Hash(), e.Hash())
	w.check(ctx)
}

// check asks the policies in force about every active grant, revoking
// those no longer permitted.
func (w *policyWatcher) check(ctx context.Context) {
	if w.reevaluate == nil {
		return
	}
	n, err := w.reevaluate(ctx)
	if err != nil && ctx.Err() == nil {
		w.logger.Error("re-evaluate active grants", "err", err)
	} else if n > 0 {
		w.logger.Info("revoked grants the policies no longer permit", "count", n)
	}
}

func (w *policyWatcher) audit(ctx context.Context, typ, from, to string) {
	ev := lapse.NewAuditEvent(typ, "lapse", "", lapse.Request{}, map[string]string{
		"folder": w.cfg.Policies, "previous_hash": from, "hash": to}, time.Now())
	ev.To = ""
	if err := w.store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
		w.logger.Error("record policy change", "err", err)
	}
}
