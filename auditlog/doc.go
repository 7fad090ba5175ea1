// Package auditlog makes the audit log tamper-evident and verifiable
// outside Lapse.
//
// The records form an RFC 6962 Merkle tree ([Tree]): leaf i is the record
// with Seq i+1, and its leaf hash is SHA-256(0x00 || the 32 bytes of the
// record's chain hash) ([LeafHash]); the chain hash covers every field of
// the record and the previous record's hash ([lapse.AuditEvent.ComputeHash]).
// [Log] signs checkpoints of the tree — its size and root hash, Ed25519, in
// the signed-note format of transparency logs — and verifies the log
// against them ([Verifier]). An [Export] is the log, or a part of it, in
// JSON Lines, with the checkpoints that cover it; it is verified without
// the server. An evidence bundle is one request's records with inclusion
// proofs against a checkpoint, signed as a whole.
package auditlog
