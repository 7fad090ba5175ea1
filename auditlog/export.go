package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lapse-access/lapse"
)

// ExportFormat names the export file format and its version.
const ExportFormat = "lapse-audit-export/1"

// An export file is JSON Lines, one object per line, in this order:
//
//	{"header": {...}}                  one ExportHeader
//	{"checkpoint": "<signed note>"}    every checkpoint that covers the records
//	{"record": {...}}                  the records, in sequence order
//
// A record is the API's audit event object, except that its "data" is the
// stored bytes verbatim (or, when those are not plain JSON, "data_b64",
// their base64), so that its hash can be recomputed. The last checkpoint
// covers the last record: the server signs one as it exports.

// ExportHeader starts an export.
type ExportHeader struct {
	Format string `json:"format"`
	Origin string `json:"origin"`
	// Key is the exporting server's verifier key. Verify with a key you
	// pinned, not with this one.
	Key        string    `json:"key"`
	ExportedAt time.Time `json:"exported_at"`
	// Start is the tree before the first record: its size and the hash of
	// its last record, and its compact range. For a whole log it is empty.
	// A wrong start cannot match the checkpoints.
	Start TreeState `json:"start"`
	// Size is the Seq of the last record.
	Size int64 `json:"size"`
}

// TreeState is a [lapse.AuditTree] in JSON.
type TreeState struct {
	Size   int64    `json:"size"`
	Head   string   `json:"head"`
	Hashes [][]byte `json:"hashes"`
}

func (t TreeState) tree() lapse.AuditTree {
	return lapse.AuditTree{Size: t.Size, Head: t.Head, Hashes: t.Hashes}
}

// exportLine is any line of an export or evidence bundle.
type exportLine struct {
	Header     *ExportHeader `json:"header,omitempty"`
	Checkpoint string        `json:"checkpoint,omitempty"`
	Record     *wireRecord   `json:"record,omitempty"`
	Proof      *Proof        `json:"proof,omitempty"`
	Evidence   *Evidence     `json:"evidence,omitempty"`
}

// wireRecord is a record on a line: the event with its data verbatim.
type wireRecord struct {
	lapse.AuditEvent
	DataB64 []byte `json:"data_b64,omitempty"`
}

func (w *wireRecord) event() lapse.AuditEvent {
	ev := w.AuditEvent
	if len(w.DataB64) > 0 {
		ev.Data = w.DataB64
	}
	return ev
}

// AppendRecord appends the JSON object of ev to b with its data verbatim:
// decoding it gives back the very bytes the record's hash covers.
func AppendRecord(b []byte, ev lapse.AuditEvent) ([]byte, error) {
	data := ev.Data
	ev.Data = nil
	head, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode record %d: %w", ev.Seq, err)
	}
	if len(data) == 0 {
		return append(b, head...), nil
	}
	b = append(b, head[:len(head)-1]...)
	if verbatim(data) {
		b = append(b, `,"data":`...)
		b = append(b, data...)
		return append(b, '}'), nil
	}
	enc, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode record %d: %w", ev.Seq, err)
	}
	b = append(b, `,"data_b64":`...)
	b = append(b, enc...)
	return append(b, '}'), nil
}

// verbatim reports whether data can stand in a line as is: valid JSON,
// not null, with no control characters (no line breaks, no tabs).
func verbatim(data []byte) bool {
	if !json.Valid(data) || bytes.Equal(data, []byte("null")) {
		return false
	}
	for _, c := range data {
		if c < 0x20 {
			return false
		}
	}
	return true
}

// Export writes the records from the one at or after since (all when since
// is zero) to w as an export file. It first signs a checkpoint, so that
// the last record exported is covered by a signature.
func (l *Log) Export(ctx context.Context, w io.Writer, since time.Time) error {
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return err
	}
	vkey, err := l.Keys.VerifierKey(ctx)
	if err != nil {
		return err
	}
	key, err := ParseVerifierKey(vkey)
	if err != nil {
		return err
	}
	first := int64(1)
	if !since.IsZero() {
		evs, err := l.Store.ListAudit(ctx, lapse.AuditFilter{Since: since, Limit: 1})
		if err != nil {
			return err
		}
		first = cp.Size + 1
		if len(evs) > 0 {
			first = min(evs[0].Seq, first)
		}
	}
	start, err := l.treeAt(ctx, first-1)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	line := func(v exportLine) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = bw.Write(append(b, '\n'))
		return err
	}
	h := ExportHeader{Format: ExportFormat, Origin: key.Name(), Key: vkey, ExportedAt: l.now(),
		Start: TreeState{Size: start.Size, Head: start.Head, Hashes: start.Hashes}, Size: cp.Size}
	if err := line(exportLine{Header: &h}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	err = l.checkpoints(ctx, start.Size, func(c lapse.Checkpoint) error {
		if c.Size > cp.Size {
			return nil
		}
		return line(exportLine{Checkpoint: string(c.Note)})
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var buf []byte
	err = l.scan(ctx, first-1, func(ev lapse.AuditEvent) error {
		if ev.Seq > cp.Size {
			return errStop
		}
		buf = append(buf[:0], `{"record":`...)
		if buf, err = AppendRecord(buf, ev); err != nil {
			return err
		}
		buf = append(buf, "}\n"...)
		_, err := bw.Write(buf)
		return err
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// treeAt returns the tree of the first size records, from their stored
// hashes.
func (l *Log) treeAt(ctx context.Context, size int64) (lapse.AuditTree, error) {
	t, err := NewTree(lapse.AuditTree{})
	if err != nil || size <= 0 {
		return t.State(), err
	}
	err = l.scan(ctx, 0, func(ev lapse.AuditEvent) error {
		if ev.Seq > size {
			return errStop
		}
		return t.Append(ev.Hash)
	})
	if err != nil && !errors.Is(err, errStop) {
		return lapse.AuditTree{}, err
	}
	if t.Size() != size {
		return lapse.AuditTree{}, &lapse.ChainError{Seq: t.Size() + 1, Reason: "record missing"}
	}
	return t.State(), nil
}

// maxLine is the longest line a reader accepts.
const maxLine = 16 << 20

// VerifyExport reads an export file from r and verifies it with key: every
// checkpoint's signature, every record's hash and place in the chain, and
// the tree the records build against every checkpoint; records missing at
// the end are found by the last checkpoint. It returns what it verified
// and the header.
func VerifyExport(r io.Reader, key string) (Result, ExportHeader, error) {
	k, err := ParseVerifierKey(key)
	if err != nil {
		return Result{}, ExportHeader{}, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		h       *ExportHeader
		v       *Verifier
		n       int
		records bool
	)
	for sc.Scan() {
		n++
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return Result{}, ExportHeader{}, lapse.Invalidf("line %d: %v", n, err)
		}
		switch {
		case n == 1:
			if l.Header == nil || l.Header.Format != ExportFormat {
				return Result{}, ExportHeader{}, lapse.Invalidf("line 1: not a Lapse audit export (want a header of format %s)", ExportFormat)
			}
			h = l.Header
			if h.Origin != k.Name() {
				return Result{}, *h, &CheckpointError{Reason: fmt.Sprintf("the export is of log %q, the key of %q", h.Origin, k.Name())}
			}
			if v, err = NewVerifier(k, h.Start.tree()); err != nil {
				return Result{}, *h, lapse.Invalidf("line 1: start: %v", err)
			}
		case l.Checkpoint != "":
			if records {
				return Result{}, *h, lapse.Invalidf("line %d: checkpoint after the records", n)
			}
			if err := v.AddCheckpoint([]byte(l.Checkpoint)); err != nil {
				return Result{}, *h, err
			}
		case l.Record != nil:
			records = true
			if err := v.Add(l.Record.event()); err != nil {
				res, _ := v.Finish()
				return res, *h, err
			}
		default:
			return Result{}, *h, lapse.Invalidf("line %d: neither a checkpoint nor a record", n)
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, ExportHeader{}, fmt.Errorf("read export: %w", err)
	}
	if h == nil {
		return Result{}, ExportHeader{}, lapse.Invalidf("empty file: not a Lapse audit export")
	}
	res, err := v.Finish()
	if err != nil {
		return res, *h, err
	}
	if res.Size < h.Size {
		return res, *h, &lapse.ChainError{Seq: res.Size + 1, Reason: fmt.Sprintf("record %d is missing: the header says the export ends at %d", res.Size+1, h.Size)}
	}
	if res.Signed < res.Size {
		return res, *h, &lapse.ChainError{Seq: res.Signed + 1, Reason: fmt.Sprintf("records %d to %d are not covered by a signed checkpoint", res.Signed+1, res.Size)}
	}
	return res, *h, nil
}
