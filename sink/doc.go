// Package sink streams the audit log to SIEM receivers: a syslog server
// (RFC 5424 messages over TCP with octet-counting framing, RFC 6587,
// optionally TLS) and an HTTP collector (batches of JSON, bearer token).
//
// A [Worker] per sink reads the audit table in sequence order after the
// sink's cursor, delivers a batch, and advances the cursor in the store only
// after the receiver acknowledged the batch. Delivery is therefore at least
// once and in order: after a crash between acknowledgement and the cursor
// update the batch is sent again, so receivers see duplicates (recognised
// by the event's seq) but never gaps. A receiver that is down is retried
// with capped exponential backoff and jitter, and receives the whole
// backlog, in order, when it is back. Nothing on the request path waits
// for a sink: the worker is woken by the store's commit hook and by a
// timer.
//
// What counts as acknowledged differs by sink. The HTTP collector
// acknowledges a batch with a 2xx answer. Syslog over TCP has no
// application-level acknowledgement: a batch counts as delivered once it
// was written and flushed to the connection without error, which means the
// bytes reached the local kernel's send buffer, not that the receiver
// processed them. The syslog sink checks before each batch that the
// receiver has not closed the connection, which catches a restarted
// receiver, but a receiver that crashes while the last batch is in flight
// can lose it. Use the HTTP collector where every record must be
// confirmed.
package sink
