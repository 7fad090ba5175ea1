package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/lapse-access/lapse/config"
	"github.com/lapse-access/lapse/metrics"
	"github.com/lapse-access/lapse/sink"
	"github.com/lapse-access/lapse/sqlstore"
)

// openSinks builds an export worker per configured sink. Bearer tokens are
// read here, from the environment or a file, and go nowhere but the sink.
func openSinks(cfgs []config.Sink, store *sqlstore.Store, mets *metrics.Metrics, logger *slog.Logger) ([]*sink.Worker, error) {
	var out []*sink.Worker
	fail := func(err error) ([]*sink.Worker, error) {
		closeSinks(out)
		return nil, err
	}
	for _, c := range cfgs {
		var s sink.Sink
		switch c.Type {
		case config.SinkSyslog:
			sl := &sink.Syslog{SinkName: c.Name, Address: c.Address, Facility: c.Facility, FacilitySet: true, Hostname: c.Hostname}
			if sl.Hostname == "" {
				sl.Hostname, _ = os.Hostname()
			}
			if c.TLS {
				tc, err := sink.TLSConfig(c.CAFile, c.ServerName)
				if err != nil {
					return fail(fmt.Errorf("sink %s: %w", c.Name, err))
				}
				sl.TLS = tc
			}
			s = sl
		case config.SinkHTTP:
			h := &sink.HTTP{SinkName: c.Name, URL: c.URL, Format: c.Format}
			tok, err := sinkToken(c)
			if err != nil {
				return fail(err)
			}
			h.Token = tok
			if c.CAFile != "" || c.ServerName != "" {
				tc, err := sink.TLSConfig(c.CAFile, c.ServerName)
				if err != nil {
					return fail(fmt.Errorf("sink %s: %w", c.Name, err))
				}
				h.TLS = tc
			}
			s = h
		default:
			return fail(fmt.Errorf("sink %s: unknown type %q", c.Name, c.Type))
		}
		w := sink.NewWorker(s, store)
		w.Batch, w.CallTimeout = c.Batch, c.Timeout
		w.Logger = logger.With("system", "sink")
		w.OnError = mets.ExportError
		if err := mets.AddExportSink(c.Name, w.Backlog); err != nil {
			return fail(fmt.Errorf("sink %s: %w", c.Name, err))
		}
		out = append(out, w)
	}
	return out, nil
}

// sinkToken reads an HTTP sink's bearer token from its variable or file.
func sinkToken(c config.Sink) (string, error) {
	switch {
	case c.TokenEnv != "":
		tok := strings.TrimSpace(os.Getenv(c.TokenEnv))
		if tok == "" {
			return "", fmt.Errorf("sink %s: environment variable %s is empty or not set", c.Name, c.TokenEnv)
		}
		return tok, nil
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("sink %s: read token file: %w", c.Name, err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("sink %s: token file %s is empty", c.Name, c.TokenFile)
		}
		return tok, nil
	}
	return "", nil
}

func closeSinks(ws []*sink.Worker) error {
	var err error
	for _, w := range ws {
		err = errors.Join(err, w.Sink.Close())
	}
	return err
}
