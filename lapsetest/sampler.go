package lapsetest

import (
	"context"
	"slices"
	"sync"

	"github.com/lapse-access/lapse"
)

// Sampler is a recording [Connector] that also reports activity: its
// SampleActivity returns what [Sampler.SetActivity] set for the grant.
type Sampler struct {
	*Connector

	// OnSample, if set, runs at the start of every SampleActivity call. Set
	// it before the sampler is in use.
	OnSample func(ctx context.Context, g lapse.Grant)

	mu       sync.Mutex
	activity map[string][]lapse.Activity
	fail     error
}

var _ lapse.ActivitySampler = (*Sampler)(nil)

// NewSampler returns a sampler with no accesses and no activity.
func NewSampler() *Sampler {
	return &Sampler{Connector: NewConnector(), activity: map[string][]lapse.Activity{}}
}

// SetActivity sets what SampleActivity returns for the grant with id,
// replacing what was set before.
func (s *Sampler) SetActivity(grantID string, acts ...lapse.Activity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activity[grantID] = slices.Clone(acts)
}

// SetFailSample makes SampleActivity return err; nil ends that.
func (s *Sampler) SetFailSample(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// SampleActivity returns the activity set for g.ID, or the error set with
// SetFailSample, or ctx's error once ctx is done. Calls counts it as
// "SampleActivity".
func (s *Sampler) SampleActivity(ctx context.Context, g lapse.Grant) ([]lapse.Activity, error) {
	s.count("SampleActivity")
	if s.OnSample != nil {
		s.OnSample(ctx, g)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	return slices.Clone(s.activity[g.ID]), nil
}
