package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
)

// The audit tree's row and the checkpoints. Queries are portable; the
// dialect adds the row lock.
const (
	selectTree = `SELECT size, head_hash, hashes FROM audit_tree WHERE id = 1`
	insertTree = `INSERT INTO audit_tree (id, size, head_hash, hashes) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	updateTree        = `UPDATE audit_tree SET size = ?, head_hash = ?, hashes = ? WHERE id = 1`
	checkpointColumns = `size, root, time, note`
)

// scanTree reads the tree's row; a missing row is sql.ErrNoRows.
func scanTree(row *sql.Row) (lapse.AuditTree, error) {
	var (
		st     lapse.AuditTree
		hashes []byte
	)
	if err := row.Scan(&st.Size, &st.Head, &hashes); err != nil {
		return lapse.AuditTree{}, err
	}
	hs, err := auditlog.DecodeHashes(hashes)
	if err != nil {
		return lapse.AuditTree{}, err
	}
	st.Hashes = hs
	if _, err := auditlog.NewTree(st); err != nil {
		return lapse.AuditTree{}, err
	}
	return st, nil
}

// initTree creates the audit tree's row from the records when the
// database has none (a log written before the tree existed, or a new one).
func (s *Store) initTree(ctx context.Context) error {
	_, err := scanTree(s.wdb.QueryRowContext(ctx, s.d.sql(selectTree)))
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read audit tree: %w", err)
	}
	tree, err := auditlog.NewTree(lapse.AuditTree{})
	if err != nil {
		return err
	}
	// Read through the write pool: the read pool may not be usable yet.
	r := reader{d: s.d, q: s.q, db: &poolQuerier{db: s.wdb}}
	err = r.ScanAuditFrom(ctx, 0, func(ev lapse.AuditEvent) error {
		if ev.Seq != tree.Size()+1 {
			return fmt.Errorf("audit record %d follows record %d", ev.Seq, tree.Size())
		}
		return tree.Append(ev.Hash)
	})
	if err != nil {
		return fmt.Errorf("build audit tree: %w", err)
	}
	st := tree.State()
	if _, err := s.wdb.ExecContext(ctx, s.d.sql(insertTree), st.Size, st.Head, auditlog.EncodeHashes(st.Hashes)); err != nil {
		return fmt.Errorf("store audit tree: %w", err)
	}
	return nil
}

// loadTree reads the audit tree once per transaction, locking its row:
// from the store's cache where the dialect allows it, else from the
// database.
func (t *tx) loadTree(ctx context.Context) error {
	if t.tree != nil {
		return nil
	}
	if t.d.lockAudit != "" {
		if _, err := t.db.ExecContext(ctx, t.d.lockAudit); err != nil {
			return fmt.Errorf("lock audit log: %w", err)
		}
	}
	st := t.s.head
	if !t.d.singleWriter || !t.s.headOK {
		var err error
		st, err = scanTree(t.db.QueryRowContext(ctx, t.d.sql(selectTree)+t.d.lockTree))
		if err != nil {
			return fmt.Errorf("read audit tree: %w", err)
		}
	}
	tree, err := auditlog.NewTree(st)
	if err != nil {
		return err
	}
	t.tree = tree
	return nil
}

// saveTree writes the tree this transaction extended.
func (t *tx) saveTree(ctx context.Context) error {
	st := t.tree.State()
	if _, err := t.db.ExecContext(ctx, t.q.updateTree, st.Size, st.Head, auditlog.EncodeHashes(st.Hashes)); err != nil {
		return fmt.Errorf("store audit tree: %w", err)
	}
	return nil
}

// AuditTree returns the audit tree as of the last commit.
func (r *reader) AuditTree(ctx context.Context) (lapse.AuditTree, error) {
	st, err := scanTree(r.db.QueryRowContext(ctx, r.d.sql(selectTree)))
	if err != nil {
		return lapse.AuditTree{}, fmt.Errorf("read audit tree: %w", err)
	}
	return st, nil
}

// AuditTree returns the audit tree with this transaction's appends, its
// row locked until the transaction ends.
func (t *tx) AuditTree(ctx context.Context) (lapse.AuditTree, error) {
	if err := t.flushAudit(ctx); err != nil {
		return lapse.AuditTree{}, err
	}
	if err := t.loadTree(ctx); err != nil {
		return lapse.AuditTree{}, err
	}
	return t.tree.State(), nil
}

// ListCheckpoints returns up to limit checkpoints of at least fromSize,
// smallest first.
func (r *reader) ListCheckpoints(ctx context.Context, fromSize int64, limit int) ([]lapse.Checkpoint, error) {
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	rows, err := r.db.QueryContext(ctx, r.d.sql(`SELECT `+checkpointColumns+` FROM audit_checkpoints
		WHERE size >= ? ORDER BY size LIMIT ?`), fromSize, limit)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	defer rows.Close()
	var out []lapse.Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	return out, nil
}

// LatestCheckpoint returns the checkpoint of the largest size, or an error
// matching [lapse.ErrNotFound].
func (r *reader) LatestCheckpoint(ctx context.Context) (lapse.Checkpoint, error) {
	c, err := scanCheckpoint(r.db.QueryRowContext(ctx, r.d.sql(`SELECT `+checkpointColumns+` FROM audit_checkpoints
		ORDER BY size DESC LIMIT 1`)))
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Checkpoint{}, lapse.NotFoundf("no audit checkpoint has been signed yet")
	}
	if err != nil {
		return lapse.Checkpoint{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	return c, nil
}

func scanCheckpoint(sc scanner) (lapse.Checkpoint, error) {
	var (
		c    lapse.Checkpoint
		at   sql.NullInt64
		note string
	)
	if err := sc.Scan(&c.Size, &c.Root, &at, &note); err != nil {
		return lapse.Checkpoint{}, err
	}
	c.Time, c.Note = decodeTime(at), []byte(note)
	return c, nil
}

// AddCheckpoint stores c; one of the same size is an error matching
// [lapse.ErrConflict].
func (t *tx) AddCheckpoint(ctx context.Context, c lapse.Checkpoint) error {
	if c.Size <= 0 || len(c.Root) != auditlog.HashSize || len(c.Note) == 0 || c.Time.IsZero() {
		return lapse.Invalidf("add checkpoint: size, root, time and note are required")
	}
	var e encoder
	at := e.time(c.Time)
	if e.err != nil {
		return fmt.Errorf("add checkpoint: %w", e.err)
	}
	res, err := t.db.ExecContext(ctx, t.d.sql(`INSERT INTO audit_checkpoints (`+checkpointColumns+`)
		VALUES (?, ?, ?, ?) ON CONFLICT (size) DO NOTHING`), c.Size, c.Root, at, string(c.Note))
	if err != nil {
		return fmt.Errorf("add checkpoint %d: %w", c.Size, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add checkpoint %d: %w", c.Size, err)
	} else if n == 0 {
		return lapse.Conflictf("a checkpoint of size %d exists", c.Size)
	}
	return nil
}
