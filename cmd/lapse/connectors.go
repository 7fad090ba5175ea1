package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
	"github.com/lapse-access/lapse/connector/postgres"
	sshc "github.com/lapse-access/lapse/connector/ssh"
	"github.com/lapse-access/lapse/connector/webhook"
)

// tokenType is the built-in token connector's config: it takes no settings,
// on the connector or on roles.
type tokenType struct{}

func (tokenType) Settings(decode func(any) error) (any, error) {
	var s struct{}
	return nil, decode(&s)
}

func (tokenType) RoleSettings(_ any, decode func(any) error) (any, error) {
	var s struct{}
	return nil, decode(&s)
}

// postgresSettings are a postgres connector's keys in lapse.yaml. The admin
// DSN is a secret: it comes from an environment variable or a file, never
// from the config itself.
type postgresSettings struct {
	DSNEnv string `yaml:"dsn_env"`
	// DSNFile is a file holding the DSN, such as a mounted secret.
	DSNFile string `yaml:"dsn_file"`
	// MaxConnections bounds admin connections to the target (default 4).
	MaxConnections int32 `yaml:"max_connections"`
	// Timeout bounds each call to the target (default 10s).
	Timeout string `yaml:"timeout"`

	timeout time.Duration
}

type postgresType struct{}

func (postgresType) Settings(decode func(any) error) (any, error) {
	var s postgresSettings
	if err := decode(&s); err != nil {
		return nil, err
	}
	switch {
	case s.DSNEnv == "" && s.DSNFile == "":
		return nil, errors.New("set dsn_env (an environment variable) or dsn_file (a file) holding the admin DSN; it never goes in this file")
	case s.DSNEnv != "" && s.DSNFile != "":
		return nil, errors.New("set only one of dsn_env and dsn_file")
	case s.MaxConnections < 0:
		return nil, fmt.Errorf("max_connections must not be negative, got %d", s.MaxConnections)
	}
	if s.Timeout != "" {
		d, err := config.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("timeout: want a positive duration such as 10s, got %q", s.Timeout)
		}
		s.timeout = d
	}
	return s, nil
}

func (postgresType) RoleSettings(_ any, decode func(any) error) (any, error) {
	var c postgres.Connector // DecodeRole uses no state of the connector
	return c.DecodeRole(decode)
}

// connectorTypes is the table of connector types this binary knows.
func connectorTypes() map[string]config.ConnectorType {
	return map[string]config.ConnectorType{
		"token":    tokenType{},
		"postgres": postgresType{},
		"ssh":      sshType{},
		"webhook":  webhookType{},
	}
}

// readSecret reads a secret from an environment variable or a file. Errors
// name where it was looked for, never its value.
func readSecret(env, file string) (string, error) {
	if env != "" {
		v, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set or empty", env)
		}
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", file)
	}
	return v, nil
}

// openConnector builds a configured connector. Constructing one connects to
// nothing.
// openConnector opens the connector c. keys holds the keys the connector
// generates; revocations keeps the revocation lists of certificate
// authorities, in the store that every replica shares.
func openConnector(ctx context.Context, c config.Connector, tokens lapse.Connector, dataDir string, keys lapse.KeyStore, revocations lapse.SerialRevocations, logger *slog.Logger) (lapse.Connector, error) {
	switch c.Type {
	case "webhook":
		s := c.Settings.(webhookSettings)
		secret, err := readSecret(s.SecretEnv, s.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("connector %q: %w", c.Name, err)
		}
		return webhook.New(s.config(c.Name, []byte(secret), logger))
	case "ssh":
		s := c.Settings.(sshSettings)
		var key crypto.Signer
		var err error
		if s.CAKeyFile != "" {
			key, err = sshc.LoadOrCreateCAKey(s.CAKeyFile)
		} else {
			key, err = sshc.LoadOrCreateCAKeyIn(ctx, keys, "ssh_ca.key")
		}
		if err != nil {
			return nil, fmt.Errorf("connector %q: %w", c.Name, err)
		}
		// The revocation list lives in the store, so that every replica
		// serves the same; a list an earlier version kept in the data dir
		// is moved there on first use.
		return sshc.New(sshc.Config{Name: c.Name, CAKey: key, Store: revocations, StateDir: filepath.Join(dataDir, "ssh", c.Name),
			KRLPath: s.KRLFile, Logger: logger})
	case "token":
		return tokens, nil
	case "postgres":
		s := c.Settings.(postgresSettings)
		dsn, err := readSecret(s.DSNEnv, s.DSNFile)
		if err != nil {
			return nil, fmt.Errorf("connector %q: %w", c.Name, err)
		}
		return postgres.New(postgres.Config{Name: c.Name, DSN: dsn, MaxConns: s.MaxConnections, Timeout: s.timeout, Logger: logger})
	}
	return nil, fmt.Errorf("connector %q: type %q cannot be served", c.Name, c.Type)
}

// sshSettings are an ssh connector's keys in lapse.yaml.
type sshSettings struct {
	// CAKeyFile is the CA's private key; default ssh_ca.key in the data dir,
	// generated on first use.
	CAKeyFile string `yaml:"ca_key_file"`
	// KRLFile, if set, is where the key revocation list is written on
	// every revocation, for a local sshd's RevokedKeys.
	KRLFile string `yaml:"krl_file"`
}

type sshType struct{}

func (sshType) Settings(decode func(any) error) (any, error) {
	var s sshSettings
	return s, decode(&s)
}

func (sshType) RoleSettings(_ any, decode func(any) error) (any, error) {
	var c sshc.Connector // DecodeRole uses no state of the connector
	return c.DecodeRole(decode)
}

// webhookSettings are a webhook connector's keys in lapse.yaml. The signing
// secret comes from an environment variable or a file.
type webhookSettings struct {
	ProvisionURL string `yaml:"provision_url"`
	RevokeURL    string `yaml:"revoke_url"`
	ExtendURL    string `yaml:"extend_url"`
	ListURL      string `yaml:"list_url"`
	SecretEnv    string `yaml:"secret_env"`
	SecretFile   string `yaml:"secret_file"`
	Timeout      string `yaml:"timeout"`

	timeout time.Duration
}

type webhookType struct{}

func (webhookType) Settings(decode func(any) error) (any, error) {
	var s webhookSettings
	if err := decode(&s); err != nil {
		return nil, err
	}
	switch {
	case s.SecretEnv == "" && s.SecretFile == "":
		return nil, errors.New("set secret_env (an environment variable) or secret_file (a file) holding the signing secret; it never goes in this file")
	case s.SecretEnv != "" && s.SecretFile != "":
		return nil, errors.New("set only one of secret_env and secret_file")
	}
	if s.Timeout != "" {
		d, err := config.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("timeout: want a positive duration such as 10s, got %q", s.Timeout)
		}
		s.timeout = d
	}
	// Check the URLs now, with a stand-in secret.
	if _, err := webhook.New(s.config("check", []byte(strings.Repeat("x", webhook.MinSecretLen)), nil)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s webhookSettings) config(name string, secret []byte, logger *slog.Logger) webhook.Config {
	return webhook.Config{Name: name, ProvisionURL: s.ProvisionURL, RevokeURL: s.RevokeURL, ExtendURL: s.ExtendURL,
		ListURL: s.ListURL, Secret: secret, Timeout: s.timeout, Logger: logger}
}

func (webhookType) RoleSettings(_ any, decode func(any) error) (any, error) {
	var c webhook.Connector // DecodeRole uses no state of the connector
	return c.DecodeRole(decode)
}
