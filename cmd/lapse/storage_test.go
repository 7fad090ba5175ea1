package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-access/lapse/config"
)

func TestStorageFromEnv(t *testing.T) {
	const hexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, []byte(hexKey), 0o644); err != nil {
		t.Fatal(err)
	}
	const db = "postgres://lapse:hunter2@db:5432/lapse"
	tests := []struct {
		name     string
		database string // server.database
		keyFile  string // server.secret_key_file
		env      map[string]string
		wantDB   string
		wantErr  string // empty: no error
	}{
		{name: "embedded store needs nothing"},
		{name: "database and key file", database: db, keyFile: keyFile, wantDB: db},
		{name: "env database wins", database: "postgres://other/x", keyFile: keyFile, env: map[string]string{envDatabase: db}, wantDB: db},
		{name: "env key", env: map[string]string{envDatabase: db, envSecretKey: hexKey}, wantDB: db},
		{name: "no secret key", database: db, wantErr: "no secret key"},
		{name: "short key", env: map[string]string{envDatabase: db, envSecretKey: "abcd"}, wantErr: "32 bytes"},
		{name: "key file others can read", database: db, keyFile: open, wantErr: "readable by others"},
		{name: "env database not postgres", env: map[string]string{envDatabase: "mysql://u:hunter2@h/db"}, wantErr: "only PostgreSQL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Server: config.Server{Listen: "127.0.0.1:8080", Database: tt.database, SecretKeyFile: tt.keyFile}}
			o, err := storageFromEnv(cfg, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), hexKey) {
					t.Errorf("error quotes a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.Database != tt.wantDB {
				t.Errorf("database %q, want %q", cfg.Server.Database, tt.wantDB)
			}
			if tt.wantDB != "" && (len(o.secretKey) != 32 || o.secretKey[31] != 0x1f || o.replica == "") {
				t.Errorf("options %+v", o)
			}
		})
	}
}

// Replicas listening on any port of one host get names of their own, so
// that one starting never releases the claims of another.
func TestReplicaNameOnAnyPort(t *testing.T) {
	env := map[string]string{envDatabase: "postgres://db/lapse", envSecretKey: strings.Repeat("ab", 32)}
	name := func() string {
		cfg := &config.Config{Server: config.Server{Listen: "127.0.0.1:0"}}
		o, err := storageFromEnv(cfg, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		return o.replica
	}
	if a, b := name(), name(); a == b {
		t.Errorf("two replicas on 127.0.0.1:0 are both named %q", a)
	}
}
