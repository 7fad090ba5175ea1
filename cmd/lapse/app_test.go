package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
)

// appServer is the server that `lapse serve` wires (openApp), run in the
// test's process on a loopback listener, so that a test can reach inside
// it: its broker, store, identity service and API.
type appServer struct {
	*app
	url string
}

// startApp runs the server of the config file at cfgPath with a fresh
// data directory until t ends. ready, if set, is called with the URL
// before the server serves (to register it at an identity provider, say).
func startApp(t *testing.T, cfgPath string, ready ...func(url string)) *appServer {
	t.Helper()
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.DataDir = t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen = ln.Addr().String()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := openApp(t.Context(), cfg, storageOptions{}, logger, ln.Addr())
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	s := &appServer{app: a, url: "http://" + ln.Addr().String()}
	for _, f := range ready {
		f(s.url)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return s
}

// syncBuffer is a buffer that several goroutines write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
