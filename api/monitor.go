package api

import "github.com/lapse-access/lapse"

// AlertPage is a page of alerts; Next, when not zero, is the cursor of the
// next page (pass it as after=).
type AlertPage struct {
	Alerts []lapse.Alert `json:"alerts"`
	Next   int64         `json:"next,omitempty"`
}

// ActivityResult is the answer to an activity report: the request whose
// grant the activity happened under (empty when none did, then
// outside_grant is true), and the sequence number of its audit record.
type ActivityResult struct {
	RequestID string `json:"request_id,omitempty"`
	Outside   bool   `json:"outside_grant"`
	Seq       int64  `json:"seq"`
}
