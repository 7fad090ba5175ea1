// Package monitor records what is done with grants during their window.
//
// A [Sampler] looks at every active grant at a fixed interval. For each
// whose connector implements [lapse.ActivitySampler] (the postgres
// connector reports the role's database sessions) it asks the target what
// is going on under the grant now, and records each activity it has not
// recorded before as an audit event of type [lapse.EvActivity], tied to
// the request: the event carries the request's id, user, resource and
// role, and its data is the [lapse.Activity] as JSON. The events of one
// pass are appended in one transaction, so they show in the audit log and
// in the request's history together.
//
// An activity is recorded once per grant however often it is sampled: the
// sampler remembers the [lapse.Activity.Key] values it has recorded or
// seen. The memory is per grant and bounded: a grant's keys are dropped
// when it is no longer active, a key that the target has not shown for an
// hour is forgotten (a session that has ended does not come back), and a
// grant keeps at most 4096 keys. After a restart the memory of each grant
// is rebuilt from its activity events in the audit log before its first
// sample, so nothing is recorded twice.
//
// Sampling is a snapshot: activity that starts and ends between two
// samples is not seen. One sampler should run per store; two would record
// the same activity twice.
//
// Other systems report activity through [Watcher.Ingest] (the HTTP API's
// POST /v1/activity); [SSHDLogin] turns sshd's log of a login with a Lapse
// certificate into such a report. Each report is tied to the grant whose
// window held its time, or recorded as [lapse.EvActivityOutside].
//
// A [Watcher] runs the anomaly rules ([Rules], [RuleNames]) on every audit
// event written through the store that [Watcher.Wrap] returns, inside the
// transaction that writes it: an alert is stored and recorded as
// [lapse.EvAlertRaised] together with what raised it, or not at all. The
// rules read the audit log as committed, outside the transaction, and add
// the events the transaction appended before from memory, so they judge
// alike whether the store writes audit records when they are appended or
// when the transaction commits. The rules about users' habits read them from a [History], which the risk
// score shares. [Watcher.Run] revokes, after the commit, the grants of
// alerts whose rule is set to revoke, and takes them from the open alerts
// again after a restart.
package monitor
